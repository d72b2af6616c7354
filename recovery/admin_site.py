"""The admin site: Django's, answering 400 to the malformed requests that Django's own admin
views would answer with a server error. Every admin page goes through ``admin_view``: the
model pages (``ModelAdmin.get_urls``), the extra pages of each ModelAdmin and the site's own."""

from functools import wraps

from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import TO_FIELD_VAR
from django.core.exceptions import BadRequest, ValidationError


def admin_request_check(request, model=None) -> None:
    """BadRequest saying what is wrong with a request no page of the admin sends."""
    # An empty ``_to_field`` passes Django's check of the field (it tests the value's truth)
    # and is then looked up as a field named "" on the change and delete pages.
    if "" in (request.GET.get(TO_FIELD_VAR), request.POST.get(TO_FIELD_VAR)):
        raise BadRequest("An empty _to_field names no field.")
    # PostgreSQL refuses a NUL character in text: a changelist filter holding one (a
    # ?status__exact=%00) would fail in the database.
    if any("\x00" in key or "\x00" in "".join(values) for key, values in request.GET.lists()):
        raise BadRequest("The address holds a NUL character.")
    # An action runs on the rows whose ids are posted: Django filters by them as they are, and
    # a value that is no id of the model fails in the query.
    if model is not None and request.method == "POST":
        for value in request.POST.getlist(ACTION_CHECKBOX_NAME):
            try:
                model._meta.pk.to_python(value)
            except ValidationError:
                raise BadRequest(f"{value[:40]!r} is not the id of a row to act on.") from None


class StudyAdminSite(admin.AdminSite):
    def admin_view(self, view, cacheable=False):
        # A model's pages are methods of its ModelAdmin.
        model_admin = getattr(view, "__self__", None)
        model = model_admin.model if isinstance(model_admin, admin.ModelAdmin) else None

        @wraps(view)
        def checked(request, *args, **kwargs):
            admin_request_check(request, model)
            return view(request, *args, **kwargs)

        return super().admin_view(checked, cacheable)
