"""The API's interactive docs: Swagger UI with its start-up script served as a file (the page
runs under a Content-Security-Policy without inline script)."""

from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularSwaggerSplitView


class ApiDocsView(SpectacularSwaggerSplitView):
    """drf-spectacular's split view, whose page links its script by the page's path alone: the
    stock view copies the whole query string into the page, so the page would echo whatever a
    link put there."""

    @extend_schema(exclude=True)  # the docs page is not an endpoint of the API
    def get(self, request, *args, **kwargs):
        self.url_self = request.path
        return super().get(request, *args, **kwargs)
