"""The task the worker process runs for an asynchronous API document
(`manage.py db_worker`, Django's tasks API through the django-tasks backport)."""

from django_tasks import task

from . import documents


@task()
def run_document(document_id: str) -> None:
    documents.run(document_id)
