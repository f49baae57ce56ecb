"""The guard in other frameworks' hooks: keys.contrib.drf (Django REST framework) and
keys.contrib.ninja (django-ninja). Each is imported only by the host that uses it, so
neither framework is needed by the keys app itself."""
