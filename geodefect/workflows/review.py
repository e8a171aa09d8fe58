"""``geodefect review import``: reviewed labels back into a training set."""

from __future__ import annotations

from geodefect.summary import Summary


def import_labels(review_csv, dataset) -> Summary:
    from geodefect.io.review import import_review

    counts = import_review(review_csv, dataset)
    line = f"added {counts['added']}, updated {counts['updated']}, skipped {counts['skipped']} (no label)"
    return Summary("review", "", [line], counts)
