"""Running it: commands, the Django admin, the catalog, bootstrap, production settings, health,
outages, the task worker, gunicorn behind nginx, hardening."""
