"""The floor for the submit benchmark: a bare Django view on the same server
settings that parses the same JSON and does one INSERT (10 columns, a JSON
field) into the table bench/submit_bench.py creates. Served only by the
benchmark's own server (bench.settings)."""

import json

from django.db import connection
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from config.urls import urlpatterns as service_urls


@csrf_exempt
def floor(request):
    body = json.loads(request.body)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_floor (action_type, tool, summary, rationale, conversation_id, callback_url,"
            " status, tier, payload) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            [
                body["action_type"],
                body.get("tool", ""),
                body["summary"],
                body.get("rationale", ""),
                body.get("conversation_id", ""),
                body.get("callback_url", ""),
                "approved",
                "auto",
                json.dumps(body["payload"]),
            ],
        )
        row_id = cursor.fetchone()[0]
    return JsonResponse({"id": row_id, "status": "approved"}, status=201)


urlpatterns = [path("bench/floor", floor), *service_urls]
