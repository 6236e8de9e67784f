from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic.base import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from campaigns import apis as campaigns_apis
from checkout import apis as checkout_apis
from core import health
from core.metrics import metrics_view
from insights import apis as insights_apis
from integrations import apis as integrations_apis
from journeys import apis as journey_apis
from loyalty import apis as loyalty_apis
from members import apis as members_apis
from rewards import apis as rewards_apis

api = [
    path("members", checkout_apis.MemberCollectionApi.as_view()),
    path("members/lookup", checkout_apis.MemberLookupApi.as_view()),
    path("members/<str:member_number>", checkout_apis.MemberDetailApi.as_view()),
    path("members/<str:member_number>/cards", members_apis.CardCollectionApi.as_view()),
    path("members/<str:member_number>/cards/<str:card>", members_apis.CardDetailApi.as_view()),
    path("members/<str:member_number>/consents", integrations_apis.MemberConsentsApi.as_view()),
    path("members/<str:member_number>/export", integrations_apis.MemberExportApi.as_view()),
    path("members/<str:member_number>/erase", integrations_apis.MemberEraseApi.as_view()),
    path("members/<str:member_number>/insights", insights_apis.MemberInsightsApi.as_view()),
    path("members/<str:member_number>/ledger", loyalty_apis.LedgerApi.as_view()),
    path("members/<str:member_number>/adjustments", loyalty_apis.AdjustmentApi.as_view()),
    path("members/<str:member_number>/benefits", rewards_apis.MemberBenefitsApi.as_view()),
    path(
        "members/<str:member_number>/benefits/<str:code>/use", rewards_apis.BenefitUseApi.as_view()
    ),
    path("members/<str:member_number>/rewards", rewards_apis.RewardClaimApi.as_view()),
    path("members/<str:member_number>/vouchers", rewards_apis.MemberVouchersApi.as_view()),
    path("rewards", rewards_apis.RewardCatalogueApi.as_view()),
    path("vouchers/<str:code>", rewards_apis.VoucherDetailApi.as_view()),
    path("vouchers/<str:code>/redeem", rewards_apis.VoucherRedeemApi.as_view()),
    path("vouchers/<str:code>/qr.png", rewards_apis.VoucherQrPngApi.as_view()),
    path("vouchers/<str:code>/qr.svg", rewards_apis.VoucherQrSvgApi.as_view()),
    path("members/<str:member_number>/missions", journey_apis.MemberMissionsApi.as_view()),
    path("events", journey_apis.EventApi.as_view()),
    path("purchases", checkout_apis.PurchaseApi.as_view()),
    path("returns", checkout_apis.ReturnApi.as_view()),
    path("redemptions", loyalty_apis.RedemptionApi.as_view()),
    path("redemptions/<str:redemption_id>/capture", loyalty_apis.RedemptionCaptureApi.as_view()),
    path("redemptions/<str:redemption_id>/cancel", loyalty_apis.RedemptionCancelApi.as_view()),
    path("campaigns", campaigns_apis.CampaignCollectionApi.as_view()),
    path("campaigns/<str:code>", campaigns_apis.CampaignDetailApi.as_view()),
    path("experiments", campaigns_apis.ExperimentCollectionApi.as_view()),
    path("experiments/<str:code>", campaigns_apis.ExperimentDetailApi.as_view()),
    path("experiments/<str:code>/exposures", campaigns_apis.ExposureApi.as_view()),
    path("experiments/<str:code>/results", campaigns_apis.ResultsApi.as_view()),
    path("surveys/nps", insights_apis.SurveyNpsApi.as_view()),
    path("insights/nps", insights_apis.NpsReportApi.as_view()),
    path("insights/retention", insights_apis.RetentionApi.as_view()),
    path("insights/segments", insights_apis.SegmentsApi.as_view()),
    path("insights/model", insights_apis.ModelApi.as_view()),
    path("insights/liability", insights_apis.LiabilityApi.as_view()),
    path("webhooks", integrations_apis.WebhookCollectionApi.as_view()),
    path("webhooks/<int:webhook_id>", integrations_apis.WebhookDetailApi.as_view()),
]

public = {"authentication_classes": [], "permission_classes": [AllowAny], "throttle_classes": []}

urlpatterns = [
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("health/", health.ready, name="health"),  # the older name of /health/ready
    path("metrics", metrics_view),
    # Browsers ask for it on every page; without it the admin's console logs a 404.
    path("favicon.ico", RedirectView.as_view(url=static("backoffice/favicon.svg"))),
    path("api/v1/", include(api)),
    # The contract is public; what it describes needs a key.
    path("api/schema/", SpectacularAPIView.as_view(**public), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", **public), name="docs"),
    path("admin/", admin.site.urls),
]

handler400 = "core.http.bad_request_view"
handler404 = "core.http.not_found_view"
handler500 = "core.http.server_error_view"
