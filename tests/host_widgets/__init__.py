"""A host project's own app, as a developer would write it, copied into the startproject
host of tests/app/test_host_project.py: its API types (a catalog file and one registered in
code) and one view of each kind the keys guard protects."""
