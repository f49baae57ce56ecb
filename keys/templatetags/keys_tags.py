from django import template
from django.forms.utils import flatatt

from keys.forms import ISO_DATE_ATTRS

register = template.Library()


@register.simple_tag
def iso_date_attrs() -> str:
    """The attributes of every date field the pane writes by hand (the listbox rows)."""
    return flatatt(ISO_DATE_ATTRS)
