"""The subgroups the retention dashboard splits by, registered with the engine at start-up
(``RecoveryConfig.ready``): retention often differs by them, and the study must show it."""

from surveys.retention import (
    NONE,
    NONE_LABEL,
    SEVERAL,
    SEVERAL_LABEL,
    collapse_one_or_several,
    subgroup_register,
)


def register_retention_subgroups() -> None:
    subgroup_register(
        "race_ethnicity", "Race/ethnicity", instrument="baseline", variable="race_ethnicity"
    )
    subgroup_register("gender", "Gender", instrument="baseline", variable="gender")
    subgroup_register(
        "justice_involved",
        "Justice involvement",
        instrument="baseline",
        variable="justice_involved",
        extra_labels={"1": "Justice-involved", "0": "Not justice-involved"},
    )
    subgroup_register("mat_status", "MAT status", instrument="baseline", variable="mat_status")
    subgroup_register(
        "treatment_setting",
        "Treatment setting",
        instrument="baseline",
        variable="treatment_setting",
    )
    # The battery asks which groups people go to at the follow-ups, not at baseline: the first
    # follow-up's answer (1 month) is the earliest there is.
    subgroup_register(
        "main_fellowship",
        "Main fellowship",
        instrument="followup",
        variable="fellowships",
        collapse=collapse_one_or_several,
        extra_labels={SEVERAL: SEVERAL_LABEL, NONE: NONE_LABEL},
        note="The battery asks about groups at the follow-ups, not at baseline, so this is "
        "the answer at the first follow-up: people who did not complete it are “Not known”, "
        "and the split describes retention after that wave. “None”: no meeting in the 30 days "
        "before; “Several”: more than one fellowship.",
    )
