"""Settings of the HTTP API, its admin routes and alerts, and of telemetry."""

from __future__ import annotations

from dataclasses import dataclass

from madara_orchestrator.cli.settings.declare import (
    NON_NEGATIVE,
    PORT,
    POSITIVE,
    Group,
    SettingsGroup,
    setting,
)


@dataclass(frozen=True)
class ApiSettings(SettingsGroup):
    GROUP = Group("API and admin", "The HTTP API (health, jobs, metrics), its admin routes and alerts.")

    host: str = setting("HOST", "HTTP API address", default="127.0.0.1", metavar="HOST")
    port: int = setting("PORT", "HTTP API port", default=3000, rule=PORT, metavar="PORT")
    admin_enabled: bool = setting("ADMIN_ENABLED", "mount the admin routes", default=False)
    admin_token: str | None = setting(
        "ADMIN_TOKEN",
        "bearer token of the admin routes",
        secret=True,
        required="required with --admin-enabled",
    )
    alert_webhook_url: str | None = setting(
        "ALERT_WEBHOOK_URL",
        "POST alerts to this URL",
        secret=True,
        unset="no webhook",
    )


@dataclass(frozen=True)
class TelemetrySettings(SettingsGroup):
    GROUP = Group(
        "telemetry", "The log's progress line, and OpenTelemetry export of metrics and job traces (SPEC §14)."
    )

    progress_interval_seconds: float = setting(
        "PROGRESS_INTERVAL_SECONDS",
        (
            "one INFO line of progress (head, each stage, open batch, lag) this often when something changed, and "
            "every 5 minutes when nothing did; 0 turns it off"
        ),
        default=30.0,
        rule=NON_NEGATIVE,
    )
    otel_collector_endpoint: str | None = setting(
        "OTEL_COLLECTOR_ENDPOINT",
        (
            "OpenTelemetry collector (OTLP over gRPC, e.g. http://127.0.0.1:4317): metrics and job traces are exported "
            "there; without it only /metrics serves the metrics"
        ),
    )
    otel_service_name: str = setting(
        "OTEL_SERVICE_NAME",
        "service name of the exported telemetry (resources <name>_meter_service and <name>_trace_service)",
        default="orchestrator",
        metavar="NAME",
    )
    otel_export_interval_seconds: float = setting(
        "OTEL_EXPORT_INTERVAL_SECONDS",
        "how often metrics are exported to the collector",
        default=5.0,
        rule=POSITIVE,
    )
