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


# --- Errors every operation can answer ---------------------------------------------------------

ERROR_SCHEMA = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
VALIDATION_SCHEMA = {
    "type": "object",
    "properties": {
        "errors": {
            "type": "object",
            "additionalProperties": {},
            "description": "Field name (or non_field) to its messages.",
        }
    },
    "required": ["errors"],
}
PARTICIPANT_PREFIX = "/api/v1/participant/"


def _json(ref: str, description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def error_responses_add(result, generator, request, public):
    """drf-spectacular postprocessing hook: every operation documents the errors that the
    authentication, permissions, routing, parsing and rate limits can answer with (and the
    503 of a database that could not be reached), in the one
    shape they have (``{"detail": ...}``; a 400 is ``{"errors": {...}}``, api/exceptions.py).
    Operations that declare one of these codes themselves keep their own."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", ERROR_SCHEMA)
    schemas.setdefault("Errors", VALIDATION_SCHEMA)
    for path, operations in result.get("paths", {}).items():
        participant = path.startswith(PARTICIPANT_PREFIX)
        for method, operation in operations.items():
            if method not in ("get", "put", "post", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            common = {
                "400": _json("Errors", "Malformed parameters or body."),
                "403": _json(
                    "Error",
                    # The participant's own surveys are theirs (anything else is a 404): only
                    # their session's CSRF check refuses them.
                    "The participant session's CSRF token is missing or wrong."
                    if participant
                    else "Not allowed: the user's roles, or the API token's scopes",
                ),
                "404": _json("Error", "No such object, or not one the caller may see."),
                "503": _json(
                    "Error",
                    "The database could not be reached: send it again after Retry-After "
                    "seconds (a submission sent again is stored once).",
                ),
            }
            if participant:
                common["401"] = {
                    **_json(
                        "Error",
                        "Not signed in to a participant session: open the personal link first.",
                    ),
                    "headers": {
                        "WWW-Authenticate": {
                            "schema": {"type": "string", "enum": ["ParticipantSession"]}
                        }
                    },
                }
                common["429"] = _json("Error", "Too many requests from this address.")
            else:
                common["401"] = _json("Error", "No valid API token or session.")
            if "requestBody" in operation:
                common["415"] = _json("Error", "The body is not JSON.")
            for code, response in common.items():
                responses.setdefault(code, response)
    return result


# --- Text: no NUL character ------------------------------------------------------------------

# Django REST framework refuses a NUL character in any text field ("Null characters are not
# allowed."), as PostgreSQL cannot store one: the schema says so, so that clients (and the
# schema-driven fuzz test) know such text is not valid input.
NO_NUL_PATTERN = "^[^\\x00]*$"


def _refused_nul_mark(schema: dict, schemas: dict, seen: set) -> None:
    if not isinstance(schema, dict):
        return
    ref = schema.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        if name not in seen:
            seen.add(name)
            _refused_nul_mark(schemas.get(name, {}), schemas, seen)
        return
    if schema.get("type") == "string" and not ({"enum", "format", "pattern"} & set(schema)):
        schema["pattern"] = NO_NUL_PATTERN
    for inner in (schema.get("properties") or {}).values():
        _refused_nul_mark(inner, schemas, seen)
    for key in ("items", "additionalProperties"):
        _refused_nul_mark(schema.get(key), schemas, seen)
    for key in ("allOf", "oneOf", "anyOf"):
        for inner in schema.get(key) or ():
            _refused_nul_mark(inner, schemas, seen)


def refused_nul_document(result, generator, request, public):
    """drf-spectacular postprocessing hook: the text fields of request bodies and query
    parameters do not accept a NUL character (``NO_NUL_PATTERN``)."""
    schemas = result.get("components", {}).get("schemas", {})
    seen: set = set()
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if method not in ("get", "put", "post", "patch", "delete"):
                continue
            for parameter in operation.get("parameters", ()):
                if parameter.get("in") == "query":
                    _refused_nul_mark(parameter.get("schema"), schemas, seen)
            for content in operation.get("requestBody", {}).get("content", {}).values():
                _refused_nul_mark(content.get("schema"), schemas, seen)
    return result
