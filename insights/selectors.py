from insights.models import MemberScore


def member_segment(*, member_id: int) -> str | None:
    """The member's value segment from the last refresh, or None (never
    scored, never purchased, or no consent to profiling)."""
    return MemberScore.objects.filter(member_id=member_id).values_list("segment", flat=True).first()
