import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

ADMIN_GROUP = "Integration administrators"


class Command(BaseCommand):
    help = (
        "Create a demo administrator with both integration-settings rights if the database has no user "
        "yet, and print its login once. Does nothing when any user exists."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, **options):
        User = get_user_model()
        with transaction.atomic():
            if User.objects.exists():
                self.stdout.write(
                    "Users exist already; no demo administrator created. Sign in with an existing user, "
                    "or add one with: .venv/bin/python manage.py createsuperuser"
                )
                return
            try:
                group = Group.objects.get(name=ADMIN_GROUP)
            except Group.DoesNotExist as exc:
                raise CommandError(f'The group "{ADMIN_GROUP}" is missing. Run "manage.py migrate" first.') from exc
            password = secrets.token_urlsafe(12)
            user = User.objects.create_user(options["username"], password=password, is_staff=True)
            user.groups.add(group)
        self.stdout.write(
            self.style.SUCCESS(
                "Demo administrator created (shown only this once):\n"
                f"  username: {user.username}\n  password: {password}"
            )
        )
