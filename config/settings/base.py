"""Settings for every environment. Every value comes from the environment (see .env.example)."""

from __future__ import annotations

from pathlib import Path

from config.env import cache_from_url, database_from_url, env, envbool, envint, envlist, envsecret

BASE_DIR = Path(__file__).resolve().parent.parent.parent

DEBUG = envbool("DEBUG", False)
SECRET_KEY = envsecret("SECRET_KEY")
if not SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "SECRET_KEY (or SECRET_KEY_FILE) must be set; ./run.sh writes one to var/local.env, which manage.py reads"
    )
if SECRET_KEY.startswith("change-me"):  # the .env.example placeholder: anyone could forge sessions with it
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("SECRET_KEY is still the .env.example placeholder; set a long random one")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.postgres",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "common",
    "teams",
    "ingestion",
    "detectors",
    "forecasting",
    "alerts",
    "feedback",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": database_from_url(env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/anomaly"))}
DATABASES["default"]["CONN_MAX_AGE"] = envint("DB_CONN_MAX_AGE", 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Rate-limit counters must be shared by every web process, or each gunicorn worker counts on its own and a
# limit of N lets through N times the workers: "db" (a PostgreSQL table made by `manage.py
# createcachetable`), or "redis://host:port/db" (not the broker's database: clearing a cache empties it).
CACHES = {"default": cache_from_url(env("CACHE_URL", "db"))}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- HTTPS ---------------------------------------------------------------------
# On by default outside DEBUG: the site is served over HTTPS, by the proxy in front of gunicorn. Cookies
# go over HTTPS only, browsers are told to use HTTPS only (HSTS), and plain-HTTP requests are redirected
# (except /health, which the container health check asks for over HTTP). ./run.sh sets HTTPS=false: it
# serves plain HTTP on 127.0.0.1.
HTTPS = envbool("HTTPS", not DEBUG)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31_536_000) if HTTPS else 0
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", HTTPS)
SECURE_REDIRECT_EXEMPT = [r"^health$"]
# The proxy terminates TLS and says so in X-Forwarded-Proto; it must overwrite what a client sends there.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", str(BASE_DIR / "var" / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
LOGIN_URL = "login"  # the review queue's; the admin keeps its own
LOGIN_REDIRECT_URL = "review-queue"
LOGOUT_REDIRECT_URL = "login"

# --- Upload limits -----------------------------------------------------------
# Uploads larger than this are refused with 413 before they are read.
INGEST_MAX_UPLOAD_BYTES = envint("INGEST_MAX_UPLOAD_BYTES", 100 * 1024 * 1024)
# Every other request body and form (the admin login, the API's JSON) is refused above this size.
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("DATA_UPLOAD_MAX_MEMORY_SIZE", 2_621_440)
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# How many rejected rows an IngestBatch keeps in full (the count is always exact).
INGEST_MAX_REPORTED_ERRORS = envint("INGEST_MAX_REPORTED_ERRORS", 100)
# Points dated more than this after now are refused per row (a clock set wrong must not move cursors).
INGEST_MAX_FUTURE_SECONDS = envint("INGEST_MAX_FUTURE_SECONDS", 86400)
# Timestamps must fall in [January 1 of INGEST_MIN_YEAR, end of INGEST_MAX_YEAR], checked per row.
INGEST_MIN_YEAR = envint("INGEST_MIN_YEAR", 1000)
INGEST_MAX_YEAR = envint("INGEST_MAX_YEAR", 2999)
# A series' name and labels (refused per distinct series, with its rows). The columns hold 200 characters.
INGEST_MAX_METRIC_LENGTH = envint("INGEST_MAX_METRIC_LENGTH", 200)
INGEST_MAX_LABELS = envint("INGEST_MAX_LABELS", 20)
INGEST_MAX_LABEL_KEY_LENGTH = envint("INGEST_MAX_LABEL_KEY_LENGTH", 100)
INGEST_MAX_LABEL_VALUE_LENGTH = envint("INGEST_MAX_LABEL_VALUE_LENGTH", 200)
# Rows and distinct series one API upload may hold (the command line streams files of any size).
INGEST_MAX_ROWS = envint("INGEST_MAX_ROWS", 5_000_000)
INGEST_MAX_SERIES = envint("INGEST_MAX_SERIES", 100_000)
# The sweep (beat, every minute) sends again the asynchronous uploads queued longer than this (a broker
# outage lost or refused their message) and takes back uploads processing longer than INGEST_STALE_SECONDS
# (their worker or web process died): asynchronous ones are queued again, the others marked failed.
# INGEST_STALE_SECONDS must exceed the task time limit and gunicorn's --timeout.
INGEST_REQUEUE_SECONDS = envint("INGEST_REQUEUE_SECONDS", 300)
INGEST_STALE_SECONDS = envint("INGEST_STALE_SECONDS", 3600)
# A table row's external id (the column holds 200 characters).
INGEST_MAX_EXTERNAL_ID_LENGTH = envint("INGEST_MAX_EXTERNAL_ID_LENGTH", 200)
if not 1 <= INGEST_MIN_YEAR < INGEST_MAX_YEAR <= 9998:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("INGEST_MIN_YEAR and INGEST_MAX_YEAR must satisfy 1 <= min < max <= 9998")
if not (1 <= INGEST_MAX_METRIC_LENGTH <= 200 and 1 <= INGEST_MAX_EXTERNAL_ID_LENGTH <= 200):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("INGEST_MAX_METRIC_LENGTH and INGEST_MAX_EXTERNAL_ID_LENGTH must be 1-200")

# --- Detector limits -------------------------------------------------------------
# Most detectors one team may have, most members of an ensemble, most points a model is fitted on,
# and the shortest schedule_interval.
DETECTOR_MAX_PER_TEAM = envint("DETECTOR_MAX_PER_TEAM", 200)
DETECTOR_MAX_ENSEMBLE_MEMBERS = envint("DETECTOR_MAX_ENSEMBLE_MEMBERS", 8)
DETECTOR_MAX_TRAINING_POINTS = envint("DETECTOR_MAX_TRAINING_POINTS", 100_000)
SCHEDULE_MIN_SECONDS = envint("SCHEDULE_MIN_SECONDS", 60)

# --- API tokens --------------------------------------------------------------
# Lifetime of a new token when none is asked for, and the longest one that may be asked for (days).
API_TOKEN_DEFAULT_TTL_DAYS = envint("API_TOKEN_DEFAULT_TTL_DAYS", 90)
API_TOKEN_MAX_TTL_DAYS = envint("API_TOKEN_MAX_TTL_DAYS", 365)
if not 1 <= API_TOKEN_DEFAULT_TTL_DAYS <= API_TOKEN_MAX_TTL_DAYS:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("API_TOKEN_DEFAULT_TTL_DAYS must be between 1 and API_TOKEN_MAX_TTL_DAYS")

# --- Failed logins -------------------------------------------------------------
# After this many failed API authentications or admin logins from one IP within the window (seconds),
# that IP gets 429 until the window ends.
AUTH_FAILURE_LIMIT = envint("AUTH_FAILURE_LIMIT", 20)
AUTH_FAILURE_WINDOW_SECONDS = envint("AUTH_FAILURE_WINDOW_SECONDS", 600)

# --- REST API ----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "teams.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "teams.permissions.TokenScopePermission",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "common.parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": ["common.filters.IdFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "common.pagination.DefaultPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "common.api.exception_handler",
    # Requests per API token (or per user of a browser session); failed authentications are limited
    # per IP by AUTH_FAILURE_LIMIT (teams.authentication).
    "DEFAULT_THROTTLE_CLASSES": ["common.throttling.TokenRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"token": env("API_THROTTLE_TOKEN_RATE", "1200/min")},
    # Proxies in front of the app that append to X-Forwarded-For (the client's IP is read through them).
    "NUM_PROXIES": envint("NUM_PROXIES", 0) or None,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Anomaly detection and forecasting platform API",
    "DESCRIPTION": "Ingest series and records, configure detectors, read anomalies and forecasts, label them.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Celery ------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = envint("CELERY_TASK_TIME_LIMIT", 30 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = envint("CELERY_TASK_SOFT_TIME_LIMIT", 25 * 60)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "ingestion.*": {"queue": "ingest"},
    "detectors.tasks.train_*": {"queue": "train"},
    "detectors.*": {"queue": "detect"},
    "forecasting.*": {"queue": "detect"},
    "alerts.*": {"queue": "notify"},
    "feedback.*": {"queue": "train"},
}
CELERY_WORKER_QUEUES = "default,ingest,detect,train,notify"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    # One tick claims every detector whose own next_run_at is due (schedules are data, edited at run time).
    "dispatch-due-detectors": {"task": "detectors.tasks.dispatch_due", "schedule": envint("DISPATCH_TICK_SECONDS", 30)},
    "requeue-stale-uploads": {"task": "ingestion.tasks.requeue_stale", "schedule": 60},
    "dispatch-due-forecasts": {
        "task": "forecasting.tasks.dispatch_due",
        "schedule": envint("DISPATCH_TICK_SECONDS", 30),
    },
    # Detectors with analyst labels newer than their last retraining get one (besides retrain_after_labels).
    "retrain-labelled-detectors": {
        "task": "feedback.tasks.retrain_scheduled",
        "schedule": envint("FEEDBACK_RETRAIN_SECONDS", 86400),
    },
}
# The review queue holds an incident for the analyst who was shown it this long.
REVIEW_CLAIM_MINUTES = envint("REVIEW_CLAIM_MINUTES", 10)
# Retraining from labels: fewer labelled incidents than this and no candidate is judged; a triage layer is
# learnt from this many incidents (at least 5 of each verdict); the latest share of labels judges candidates.
FEEDBACK_MIN_LABELS = envint("FEEDBACK_MIN_LABELS", 8)
FEEDBACK_MIN_SUPERVISED_LABELS = envint("FEEDBACK_MIN_SUPERVISED_LABELS", 20)
FEEDBACK_HOLDOUT_FRACTION = float(env("FEEDBACK_HOLDOUT_FRACTION", "0.3"))
# Threads numerical libraries (BLAS, OpenMP) may use inside one worker process.
WORKER_MATH_THREADS = envint("WORKER_MATH_THREADS", 1)
# Realtime: new points wait this long so that uploads arriving together are scored in one run.
REALTIME_COALESCE_SECONDS = envint("REALTIME_COALESCE_SECONDS", 2)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Alerting ------------------------------------------------------------------
# A webhook or Slack POST gives up after this long (a transient failure, retried).
ALERTS_HTTP_TIMEOUT_SECONDS = envint("ALERTS_HTTP_TIMEOUT_SECONDS", 10)
# A sender holds a notification this long; a claim older than this is a dead worker's and is taken again.
ALERTS_SEND_LEASE_SECONDS = envint("ALERTS_SEND_LEASE_SECONDS", 15)
# Transient failures are retried this many times in all, waiting base * 2^(attempt-1) s (at most 10 min).
ALERTS_MAX_ATTEMPTS = envint("ALERTS_MAX_ATTEMPTS", 8)
ALERTS_RETRY_BASE_SECONDS = envint("ALERTS_RETRY_BASE_SECONDS", 2)
# The beat tick that re-enqueues incident events and due notifications whose task was lost (a worker killed
# with it reserved: Redis keeps such a task unacknowledged for an hour), once they have waited this long.
ALERTS_SWEEP_SECONDS = envint("ALERTS_SWEEP_SECONDS", 2)
ALERTS_REDISPATCH_SECONDS = envint("ALERTS_REDISPATCH_SECONDS", 5)
if ALERTS_SEND_LEASE_SECONDS <= ALERTS_HTTP_TIMEOUT_SECONDS:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("ALERTS_SEND_LEASE_SECONDS must be longer than ALERTS_HTTP_TIMEOUT_SECONDS")
CELERY_BEAT_SCHEDULE["redispatch-notifications"] = {
    "task": "alerts.tasks.redispatch_due",
    "schedule": ALERTS_SWEEP_SECONDS,
}
# Email channels send through Django's email backend (SMTP unless EMAIL_BACKEND says otherwise).
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = envsecret("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = envbool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 10)
EMAIL_FILE_PATH = env("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "alerts@localhost")

# --- Logging: one JSON object per line on stdout -------------------------------
LOG_LEVEL = env("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "config.logging.JsonFormatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"}},
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "celery": {"level": LOG_LEVEL},
    },
}
