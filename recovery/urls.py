from django.contrib import admin
from django.urls import include, path

from recovery.health import healthz
from surveys.two_factor_views import two_factor_setup

admin.site.site_header = "Recovery study"
admin.site.site_title = "Recovery study admin"
admin.site.index_title = "Study administration"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/two-factor/", admin.site.admin_view(two_factor_setup), name="two-factor-setup"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("api.urls")),
    path("p/", include("surveys.participant_urls")),
    # Signed calls from providers (Twilio's inbound SMS): no session, no CSRF token.
    path("hooks/", include("surveys.hooks")),
]

handler400 = "api.exceptions.bad_request"
handler404 = "api.exceptions.not_found"
handler500 = "api.exceptions.server_error"
