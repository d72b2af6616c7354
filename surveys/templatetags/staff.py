"""The admin index's "Follow-up work" box: the pages coordinators and researchers use most."""

from django import template
from django.urls import reverse

from surveys import selectors
from surveys.study_links import study_links

register = template.Library()


@register.inclusion_tag("admin/surveys/_follow_up_tools.html", takes_context=True)
def follow_up_tools(context) -> dict:
    request = context["request"]
    user = request.user
    links: list[tuple[str, str, str]] = []
    if user.has_perm("surveys.view_assignment"):
        links.append(
            (
                "Call list",
                reverse("admin:surveys_assignment_call_list"),
                "overdue and closing surveys, most urgent first",
            )
        )
    for study in selectors.studies_for_user(user=user).only("pk", "name"):
        links.append(
            (
                f"Retention: {study.name}",
                reverse("admin:surveys_study_retention", args=[study.pk]),
                "by wave, site and subgroup",
            )
        )
        links.append(
            (
                f"Export data: {study.name}",
                reverse("admin:surveys_study_export", args=[study.pk]),
                "long or wide CSV, de-identified, with a codebook",
            )
        )
        for link in study_links():
            links.append(
                (f"{link.label}: {study.name}", reverse(link.url_name, args=[study.pk]), link.note)
            )
    if (
        user.has_perm("surveys.add_participant")
        and selectors.sites_for_enrolment(user=user).exists()
    ):
        links.append(
            ("Enrol a participant", reverse("admin:surveys_participant_add"), "with consent")
        )
        links.append(
            ("Import participants", reverse("admin:surveys_participant_import"), "from a CSV file")
        )
    return {"links": links}


@register.simple_tag
def study_tool_links(study) -> list[tuple[str, str]]:
    """(label, url) of the pages other apps add to a study, for its page's tool bar."""
    return [(link.label, reverse(link.url_name, args=[study.pk])) for link in study_links()]
