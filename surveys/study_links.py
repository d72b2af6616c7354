"""Pages other apps add to a study (the study's page and the admin home's "Follow-up work" box
link to them), so that the engine links to them without importing those apps."""

from dataclasses import dataclass


@dataclass(frozen=True)
class StudyLink:
    label: str  # e.g. "Analyses"
    url_name: str  # an admin URL name taking the study's id
    note: str  # what the page is for, in a few words


_LINKS: dict[str, StudyLink] = {}


def register_study_link(link: StudyLink) -> None:
    _LINKS[link.url_name] = link


def study_links() -> list[StudyLink]:
    return list(_LINKS.values())
