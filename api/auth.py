"""Staff API tokens: ``Authorization: Bearer <key>`` (surveys/tokens.py), each limited to
its scopes (``TokenScope``)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission

from surveys.models import StaffApiToken
from surveys.tokens import staff_token_find


class StaffTokenAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Send the header as: Authorization: Bearer <key>.")
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise AuthenticationFailed("The key is not valid.") from exc
        token = staff_token_find(key=key)
        if token is None:
            raise AuthenticationFailed("The key is unknown, expired or revoked.")
        return (token.user, token)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class StaffTokenScheme(OpenApiAuthenticationExtension):
    target_class = StaffTokenAuthentication
    name = "staffToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer"}


class TokenScope(BasePermission):
    """A request made with an API token needs the view's scope among the token's: the view's
    ``api_scope`` (a scope, or a dict of method to scope), else ``read`` to read and
    ``write`` to change. Sessions (the browser) are not limited by scopes."""

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if not isinstance(token, StaffApiToken):
            return True
        needed = view_api_scope(view, request.method)
        if needed in token.scope_set:
            return True
        self.message = lacks_scope(needed)
        return False

    @staticmethod
    def require(request, scope: str) -> None:
        """Refuse (403) a request made with a token that lacks ``scope``, for what a view
        needs beyond its own scope (an identified export needs ``contacts`` too)."""
        token = request.auth
        if isinstance(token, StaffApiToken) and scope not in token.scope_set:
            raise PermissionDenied(lacks_scope(scope))


def lacks_scope(scope: str) -> str:
    return f"This API token lacks the '{scope}' scope; make a token with it (admin: API tokens)."


def view_api_scope(view, method: str) -> str:
    declared = getattr(view, "api_scope", None)
    if isinstance(declared, dict):
        declared = declared.get(method.upper())
    if declared:
        return declared
    return "read" if method.upper() in SAFE_METHODS else "write"
