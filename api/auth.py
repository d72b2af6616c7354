"""Staff API tokens: ``Authorization: Bearer <key>`` (surveys/tokens.py)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from surveys.tokens import staff_token_user


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
        user = staff_token_user(key=key)
        if user is None:
            raise AuthenticationFailed("The key is unknown, expired or revoked.")
        return (user, None)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class StaffTokenScheme(OpenApiAuthenticationExtension):
    target_class = StaffTokenAuthentication
    name = "staffToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer"}
