"""The page where a staff member turns on two-factor sign-in (admin: "Two-factor sign-in")."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache

from surveys import totp
from surveys.two_factor import (
    provisioning_uri,
    session_passed,
    two_factor_confirm,
    two_factor_on,
    two_factor_required,
    two_factor_start,
)


@never_cache
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    user = request.user
    context = {
        **admin.site.each_context(request),
        "title": "Two-factor sign-in",
        "required": two_factor_required(user),
    }
    if two_factor_on(user) is not None:
        return TemplateResponse(request, "admin/two_factor.html", {**context, "on": True})
    device = two_factor_start(user=user, fresh=request.method != "POST")
    error = ""
    if request.method == "POST":
        if two_factor_confirm(user=user, code=request.POST.get("code", ""), request=request):
            session_passed(request)  # this session goes on; the user's others end
            return TemplateResponse(
                request, "admin/two_factor.html", {**context, "on": True, "just_now": True}
            )
        error = (
            "That code is not the current one. Check the phone's clock, and type the code "
            "shown now."
        )
    context.update(
        key=totp.grouped(device.secret),
        uri=provisioning_uri(device),
        error=error,
    )
    return TemplateResponse(request, "admin/two_factor.html", context)
