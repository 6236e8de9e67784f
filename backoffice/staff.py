"""The staff groups every club has, created (or completed) after each migrate:

- `Club support`: find and view everything of the club (every `view_*`
  permission of its apps) and adjust points up to SUPPORT_ADJUST_LIMIT a
  call (`members.adjust_points`);
- `Club admin`: every permission of the club's apps and of its schedules
  (django_celery_beat): adjust without limit, override tiers, reactivate
  vouchers, create API keys, export and erase members, edit the catalogue.

Staff accounts and groups themselves (django.contrib.auth) stay with
superusers. The handler only adds what is missing, so running it again
changes nothing and a permission an operator added to a group stays.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.db.models import Q

CLUB_SUPPORT = "Club support"
CLUB_ADMIN = "Club admin"

# The club's apps, lowest layer first, and its schedules.
CLUB_APPS = (
    "core",
    "club",
    "members",
    "loyalty",
    "rewards",
    "journeys",
    "insights",
    "campaigns",
    "checkout",
    "integrations",
    "backoffice",
    "django_celery_beat",
)


def _club_permissions() -> Any:
    return Permission.objects.filter(content_type__app_label__in=CLUB_APPS)


def staff_groups_install() -> None:
    support, _ = Group.objects.get_or_create(name=CLUB_SUPPORT)
    support.permissions.add(
        *_club_permissions().filter(
            Q(codename__startswith="view_")
            | Q(content_type__app_label="members", codename="adjust_points")
        )
    )
    admin, _ = Group.objects.get_or_create(name=CLUB_ADMIN)
    admin.permissions.add(*_club_permissions())


def staff_groups_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """post_migrate is sent once for each app with models, in the order of
    INSTALLED_APPS; after the last one's, every permission exists."""
    with_models = [config for config in apps.get_app_configs() if config.models_module]
    if using == "default" and sender is with_models[-1]:
        staff_groups_install()
