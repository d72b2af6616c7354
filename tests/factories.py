from datetime import date

import factory
from django.contrib.auth import get_user_model

from surveys.models import Instrument, InstrumentVersion, Participant, Site, Study, Wave


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"staff{n}")
    password = factory.django.Password("a-long-test-password-123")


class StudyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Study

    slug = factory.Sequence(lambda n: f"study-{n}")
    name = factory.Sequence(lambda n: f"Study {n}")
    default_timezone = "America/New_York"


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site

    study = factory.SubFactory(StudyFactory)
    code = factory.Sequence(lambda n: f"S{n}")
    name = factory.Sequence(lambda n: f"Site {n}")
    timezone = "America/New_York"


class WaveFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Wave

    study = factory.SubFactory(StudyFactory)
    slug = factory.Sequence(lambda n: f"w{n}")
    name = factory.Sequence(lambda n: f"Wave {n}")
    position = factory.Sequence(lambda n: n)
    offset_days = 30
    window_before_days = 7
    window_after_days = 28


class InstrumentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Instrument

    study = factory.SubFactory(StudyFactory)
    slug = factory.Sequence(lambda n: f"instrument-{n}")
    name = factory.Sequence(lambda n: f"Instrument {n}")


class InstrumentVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InstrumentVersion

    instrument = factory.SubFactory(InstrumentFactory)
    number = 1


class ParticipantFactory(factory.django.DjangoModelFactory):
    """An unsaved-by-default participant: enrol it with ``participant_enrol``."""

    class Meta:
        model = Participant
        strategy = factory.BUILD_STRATEGY

    site = factory.SubFactory(SiteFactory)
    study = factory.SelfAttribute("site.study")
    code = factory.Sequence(lambda n: f"P-{n:05d}")
    enrolled_on = date(2026, 1, 15)
    timezone = "America/New_York"
