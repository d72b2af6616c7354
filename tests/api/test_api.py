from surveys.models import StaffRole


def test_openapi_schema_and_docs_are_served_with_local_assets_only(client, db):
    schema = client.get("/api/v1/schema/")
    assert schema.status_code == 200
    assert "/api/v1/studies/" in schema.text
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    html = docs.text
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn" not in html.lower()
    assert "https://" not in html


def test_swagger_ui_assets_are_served_by_the_app(client, db):
    response = client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert response.status_code == 200


def test_study_list_needs_a_login(client, db):
    reply = client.get("/api/v1/studies/")
    # 401 with the way to authenticate: a staff API token (or the admin's session).
    assert reply.status_code == 401 and reply["WWW-Authenticate"].startswith("Bearer")


def test_study_list_shows_only_the_users_studies(client, study, staff_user, db):
    from recovery.services import study_create_from_template

    other = study_create_from_template(
        slug="elsewhere", name="Elsewhere", sites=[("E", "E", "UTC")]
    )
    user = staff_user(study=study, role=StaffRole.Role.RESEARCHER)
    client.force_login(user)
    response = client.get("/api/v1/studies/")
    assert response.status_code == 200
    assert [s["slug"] for s in response.json()] == ["trial"]
    assert other.slug not in response.text


def test_openapi_schema_generates_without_warnings_and_validates():
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "spectacular",
            "--validate",
            "--fail-on-warn",
            "--file",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=__import__("pathlib").Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr[-3000:]
