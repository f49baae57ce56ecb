"""The /chqapi/ side: what integrators' programs call with an ApiKey header.

- the ApiKey guard and the handler registry are keys.guard's (the keys app's, which never imports this package);
- views, urls, errors, paths: the routes, which paths are the API's, and JSON answers for every failure;
- handlers: the API types this installation serves itself;
- documents, tasks: API documents' life (reserving a caller's id, async start and run,
  status and getdata) and the task that runs an asynchronous one.

Storing a document is the keys app's (keys/calllog/), as is the task worker that runs
the documents (keys/worker.py); this package builds on both.
"""
