"""What palplat created apart from what it adopted (palplat.services.origin): the record
delete_data relies on, and the inference for objects applied before the record existed."""

from palplat.services import origin


def ns(annotations=None, labels=None, managed=()):
    return {
        "metadata": {
            "name": "x",
            "annotations": annotations or {},
            "labels": labels or {},
            "managedFields": [{"manager": m, "operation": op, "time": t} for m, op, t in managed],
        }
    }


PAL = {"app.kubernetes.io/managed-by": "palplat"}


def test_recorded_origin_wins_and_a_missing_object_is_palplats_to_create():
    assert origin.of_live(None) == origin.CREATED
    assert origin.of_live(ns({origin.ORIGIN: "adopted"}, PAL, [("palplat", "Apply", "1")])) == (
        origin.ADOPTED
    )
    assert origin.of_live(ns({origin.ORIGIN: "created"})) == origin.CREATED


def test_without_a_record_palplat_created_it_only_when_it_wrote_it_first():
    day = "2024-01-0{}T00:00:00Z".format
    made = ns(labels=PAL, managed=[("palplat", "Apply", day(1)),
                                    ("kube-controller-manager", "Update", day(2))])  # fmt: skip
    hand = ns(labels=PAL, managed=[("kubectl-create", "Update", day(1)),
                                    ("palplat", "Apply", day(3))])  # fmt: skip
    tie = ns(labels=PAL, managed=[("kubectl-create", "Update", day(1)),
                                   ("palplat", "Apply", day(1))])  # fmt: skip
    assert origin.of_live(made) == origin.CREATED
    assert origin.of_live(hand) == origin.ADOPTED
    assert origin.of_live(tie) == origin.ADOPTED
    assert origin.of_live(ns()) == origin.ADOPTED


def test_the_harbor_projects_origin():
    assert origin.project_origin(None, exists=False) == origin.CREATED
    assert origin.project_origin(None, exists=True) == origin.ADOPTED  # e.g. `library`
    rec = ns({origin.ORIGIN: "created", origin.PROJECT_ORIGIN: "created"}, PAL)
    assert origin.project_origin(rec, exists=True) == origin.CREATED
    # a namespace palplat made before the record: the project goes with it
    legacy = ns(labels=PAL, managed=[("palplat", "Apply", "2024-01-01T00:00:00Z")])
    assert origin.project_origin(legacy, exists=True) == origin.CREATED
    adopted_ns = ns({origin.ORIGIN: "adopted"}, PAL)
    assert origin.project_origin(adopted_ns, exists=True) == origin.ADOPTED
