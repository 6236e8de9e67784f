"""django.contrib.admin with the staff's site. Its own module, free of
models: INSTALLED_APPS imports it before the apps are ready."""

from django.contrib.admin.apps import AdminConfig


class LojalAdminConfig(AdminConfig):
    """The admin whose site (backoffice.sites) has the dashboard as its home page."""

    default_site = "backoffice.sites.LojalAdminSite"
