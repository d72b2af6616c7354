"""Template filters for the participant pages."""

from django import template
from django.utils.translation import get_language

register = template.Library()


@register.filter
def shown_name(obj) -> str:
    """A wave's or instrument's name in the language being rendered (its ``names``), else
    its own name."""
    return obj.name_in((get_language() or "en").split("-")[0])
