from django.contrib import admin
from django.urls import include, path

from reviewqueue.api.routes import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("reviewqueue.web.urls")),
]
