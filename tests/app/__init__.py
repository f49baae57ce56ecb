"""The keys app as an installable Django app: its structure, and a fresh startproject host that
installs it from the wheel."""
