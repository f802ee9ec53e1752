from django.urls import path

from reviewqueue.web import views

urlpatterns = [
    path("", views.home, name="home"),
    path("queue/<str:tab>/", views.queue, name="queue"),
    path("nav/", views.nav, name="nav"),
    path("actions/<uuid:action_id>/", views.action_page, name="action"),
    path("actions/<uuid:action_id>/claim", views.action_claim, name="action_claim"),
    path("actions/<uuid:action_id>/reveal", views.action_reveal, name="action_reveal"),
    path("actions/<uuid:action_id>/edit-preview", views.action_edit_preview, name="action_edit_preview"),
    path("actions/<uuid:action_id>/decide", views.action_decide, name="action_decide"),
    path("ops/kill-switches/", views.kill_switches, name="kill_switches"),
    path("ops/kill-switches/change", views.kill_switch_change, name="kill_switch_change"),
]
