from django.http import HttpResponse


def settings_index(request):
    return HttpResponse("")
