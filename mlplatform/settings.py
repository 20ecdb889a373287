"""The one settings module. Every deployment-specific value comes from the environment.

With no environment at all the platform runs in the *embedded default* mode: SQLite plus
kombu's SQLAlchemy transport over SQLite as the Celery broker, so `make demo` needs no server.
Production sets DATABASE_URL (PostgreSQL) and REDIS_URL.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from mlplatform.env import env_bool, env_cidrs, env_float, env_int, env_json, env_list, env_rate_per_minute, env_str
from mlplatform.storage_config import default_storage_config
from mlplatform.version import API_VERSION

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("MLPLATFORM_DATA_DIR") or BASE_DIR / "var")
DATA_DIR.mkdir(parents=True, exist_ok=True)

# `make demo` leaves DATA_DIR/demo.env (DEBUG=1) so that any management command in that checkout
# (`python manage.py createsuperuser`) runs with the demo's settings. It can never weaken a
# configured installation: the file is read only when the environment sets none of DEBUG,
# SECRET_KEY, DATABASE_URL and REDIS_URL (production must set SECRET_KEY, tests set all four),
# and only the keys in DEMO_ENV_KEYS are taken from it.
DEMO_ENV_KEYS = frozenset({"DEBUG"})
DEMO_ENV_FILE = DATA_DIR / "demo.env"


def _demo_env() -> None:
    if any(os.environ.get(k) for k in ("DEBUG", "SECRET_KEY", "DATABASE_URL", "REDIS_URL")):
        return
    if not DEMO_ENV_FILE.is_file():
        return
    for line in DEMO_ENV_FILE.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() in DEMO_ENV_KEYS:
            os.environ.setdefault(key.strip(), value.strip())


_demo_env()
DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`)."
        )
    # Development only: a random key per checkout, kept out of the repository (var/ is ignored).
    key_file = DATA_DIR / "dev_secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "projects",
    "jobs",
    "datasets",
    "experiments",
    "deployments",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "mlplatform.csp.ContentSecurityPolicyMiddleware",
    "mlplatform.middleware.RequestTooLargeMiddleware",
    "mlplatform.jsonguard.JsonDepthMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mlplatform.urls"
WSGI_APPLICATION = "mlplatform.wsgi.application"

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
                "mlplatform.csp.csp_nonce",
            ],
            # Number, time and icon helpers every template uses (mlplatform/templatefilters.py).
            "builtins": ["mlplatform.templatefilters"],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'mlplatform.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The web process and the embedded worker share the file: wait for locks instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "projects:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "mlplatform.staticfinders.VendorFinder",
]
STORAGES = {
    # local disk (embedded default), `s3` (S3_BUCKET, S3_ENDPOINT_URL...) or a storage class:
    # mlplatform/storage_config.py
    "default": default_storage_config(DATA_DIR),
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG and env_bool("STATIC_MANIFEST", True)
        else "django.contrib.staticfiles.storage.StaticFilesStorage",
    },
}
WHITENOISE_USE_FINDERS = DEBUG or not env_bool("STATIC_MANIFEST", True)

# --- Security -------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the UI's fetch() calls read it from the cookie
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
_https = env_bool("HTTPS", not DEBUG)
SESSION_COOKIE_SECURE = _https
CSRF_COOKIE_SECURE = _https
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _https)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if _https else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _https
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", _https)
if env_bool("BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Request bodies: JSON bodies (predict, rows) up to this size; larger ones get 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BODY_BYTES", 10 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_NUMBER_FILES = 1
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 512 * 1024 * 1024, minimum=1024)
PROJECT_STORAGE_QUOTA_BYTES = env_int("PROJECT_STORAGE_QUOTA_BYTES", 20 * 1024**3, minimum=0)
# Hostile files and bodies: limits checked before the work they would cost (datasets/ingest.py,
# mlplatform/jsonguard.py). A version over a limit fails with a message naming it.
MAX_JSON_DEPTH = env_int("MAX_JSON_DEPTH", 64, minimum=2)
MAX_COLUMNS = env_int("MAX_COLUMNS", 2_000, minimum=1)
MAX_ROWS = env_int("MAX_ROWS", 5_000_000, minimum=1)
# Decompressed size of a table (Parquet's uncompressed column chunks, Arrow's buffers).
MAX_TABLE_BYTES = env_int("MAX_TABLE_BYTES", 2 * 1024**3, minimum=1024)
PROFILE_MAX_BYTES = env_int("PROFILE_MAX_BYTES", 32 * 1024**2, minimum=1024)
# External runs (experiments/external.py): the uploaded skops file, and what its zip unpacks to.
EXTERNAL_MODEL_MAX_BYTES = env_int("EXTERNAL_MODEL_MAX_BYTES", 100 * 1024**2, minimum=1024)
EXTERNAL_MODEL_MAX_UNPACKED_BYTES = env_int("EXTERNAL_MODEL_MAX_UNPACKED_BYTES", 512 * 1024**2, minimum=1024)

# --- Accounts -------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = ["accounts.backends.ThrottledModelBackend"]
# Proxies whose X-Forwarded-For is believed (CIDRs). Without them the direct peer is the client.
TRUSTED_PROXIES = env_cidrs("TRUSTED_PROXIES")
# Failed logins (form, token endpoint, admin) per account and per client address, in Redis:
# after the free failures each further failure doubles the wait (base, 2x base ... up to max).
LOGIN_FREE_FAILURES = env_int("LOGIN_FREE_FAILURES", 5, minimum=1)
LOGIN_ADDRESS_FREE_FAILURES = env_int("LOGIN_ADDRESS_FREE_FAILURES", 20, minimum=1)
LOGIN_BACKOFF_BASE_SECONDS = env_int("LOGIN_BACKOFF_BASE_SECONDS", 1, minimum=1)
LOGIN_BACKOFF_MAX_SECONDS = env_int("LOGIN_BACKOFF_MAX_SECONDS", 900, minimum=1)
LOGIN_FAILURE_MEMORY_SECONDS = env_int("LOGIN_FAILURE_MEMORY_SECONDS", 3600, minimum=60)
# API tokens: 0 = no cap; otherwise every token expires within this many days.
API_TOKEN_MAX_DAYS = env_int("API_TOKEN_MAX_DAYS", 0, minimum=0)

# --- Celery ---------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL or f"sqla+sqlite:///{DATA_DIR / 'celery-broker.sqlite3'}"
EMBEDDED_BROKER = CELERY_BROKER_URL.startswith("sqla+")
# A task must finish well before Redis re-delivers it to another worker (visibility timeout),
# or it runs twice in parallel (celery#5306): the hard time limit stays below the timeout.
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 7200, minimum=60)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 6600, minimum=10)
if CELERY_TASK_TIME_LIMIT >= CELERY_VISIBILITY_TIMEOUT:
    raise ImproperlyConfigured("CELERY_TASK_TIME_LIMIT must be below CELERY_VISIBILITY_TIMEOUT")

# Jobs: the heartbeat a running job writes, and when a silent job counts as lost.
JOB_HEARTBEAT_SECONDS = env_float("JOB_HEARTBEAT_SECONDS", 5.0)
JOB_STALE_AFTER_SECONDS = env_float("JOB_STALE_AFTER_SECONDS", 30.0)
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3, minimum=1)
# A queued job whose message may have been lost (Redis restarted without persistence) is
# published again after this long; duplicates are harmless (claims are atomic).
JOB_REQUEUE_AFTER_SECONDS = env_float("JOB_REQUEUE_AFTER_SECONDS", 300.0)
# How often beat runs the sweep that re-queues the jobs of a dead worker (jobs.runner).
JOB_SWEEP_SECONDS = env_float("JOB_SWEEP_SECONDS", 30.0)
if JOB_SWEEP_SECONDS <= 0:
    raise ImproperlyConfigured(f"JOB_SWEEP_SECONDS must be > 0, got {JOB_SWEEP_SECONDS}")
DIAGNOSTIC_CRASH_JOBS = env_bool("DIAGNOSTIC_CRASH_JOBS", False)  # test suite only
# `GET /api/v1/jobs/{id}/?wait=N` and `.../events/` hold a web thread while they wait: capped,
# and at most JOB_WAIT_SLOTS waits per web process (beyond that a wait answers within a second).
JOB_WAIT_MAX_SECONDS = env_float("JOB_WAIT_MAX_SECONDS", 60.0)
JOB_WAIT_SLOTS = env_int("JOB_WAIT_SLOTS", 16, minimum=1)

# --- Data collection ------------------------------------------------------------------------
# Every outbound connection made for a user (URL import, SQL, webhooks) follows
# mlplatform/netguard.py: these hosts (exact names) may resolve to private addresses.
URL_FETCH_ALLOWED_HOSTS = env_list("URL_FETCH_ALLOWED_HOSTS", [])
URL_FETCH_MAX_BYTES = env_int("URL_FETCH_MAX_BYTES", 512 * 1024 * 1024, minimum=1)
URL_FETCH_TIMEOUT_SECONDS = env_float("URL_FETCH_TIMEOUT_SECONDS", 30.0)
# Each wait for a socket (connect, and every read): a closed, filtered or silent port all fail
# with one message after this long, so the platform is no port scanner.
OUTBOUND_CONNECT_TIMEOUT_SECONDS = env_float("OUTBOUND_CONNECT_TIMEOUT_SECONDS", 10.0)
if not 1 <= OUTBOUND_CONNECT_TIMEOUT_SECONDS <= 60:
    raise ImproperlyConfigured("OUTBOUND_CONNECT_TIMEOUT_SECONDS must be between 1 and 60")


def _sql_connections() -> dict:
    from mlplatform.netguard import operator_connections

    try:
        return operator_connections(env_json("SQL_CONNECTIONS", {}))
    except ValueError as exc:
        raise ImproperlyConfigured(f"SQL_CONNECTIONS {exc}") from None


# {"name": {"dsn": "postgresql://...", "projects": [ids] or "*"}}: connections managed by operators.
SQL_CONNECTIONS = _sql_connections()
FIELD_ENCRYPTION_KEY = env_str("FIELD_ENCRYPTION_KEY")  # Fernet key; derived from SECRET_KEY if unset

# --- Serving --------------------------------------------------------------------------------
PREDICT_MAX_INSTANCES = env_int("PREDICT_MAX_INSTANCES", 1000, minimum=1)
PREDICTION_LOGGING = env_bool("PREDICTION_LOGGING", True)  # off only for the benchmark's price arm
# Predictions are committed with PostgreSQL's asynchronous commit unless this is on (durable on
# disk before the 200, at the price of one WAL flush per request).
PREDICTION_LOG_SYNC_COMMIT = env_bool("PREDICTION_LOG_SYNC_COMMIT", False)
# The API hands its prediction rows to a Redis queue that drainers write to PostgreSQL in batches
# (deployments/prediction_log.py); off, or without Redis, each request writes its own rows.
PREDICTION_LOG_QUEUE = env_bool("PREDICTION_LOG_QUEUE", True)
PREDICTION_LOG_FLUSH_MS = env_int("PREDICTION_LOG_FLUSH_MS", 200, minimum=10)
# The columnar prediction store (docs/prediction-store.md): drainers write features and outputs
# as Parquet segments; a deployment keeps its logged predictions this many days unless it says.
PREDICTION_STORE_COLUMNAR = env_bool("PREDICTION_STORE_COLUMNAR", True)
PREDICTION_RETENTION_DAYS = env_int("PREDICTION_RETENTION_DAYS", 365, minimum=1)
# A batch job's uploaded input and scored output are deleted this many days after it finished
# (the job row, its counts and its logged predictions stay; the download then answers 410).
BATCH_FILE_RETENTION_DAYS = env_int("BATCH_FILE_RETENTION_DAYS", 30, minimum=1)
# Old model versions: the hourly housekeeping deletes the files (model, drift reference) of a
# version older than this many days that nothing can serve again: not active, shadow or the
# rollback target of a live deployment, and not among the project's newest
# MODEL_VERSION_KEEP_LATEST versions. Its row, metrics, lineage and model card stay. 0: keep all.
MODEL_VERSION_RETENTION_DAYS = env_int("MODEL_VERSION_RETENTION_DAYS", 0, minimum=0)
MODEL_VERSION_KEEP_LATEST = env_int("MODEL_VERSION_KEEP_LATEST", 5, minimum=1)
# Each web process keeps API keys and their deployment for this long, dropping them at once when a
# deployment or key changes anywhere (a generation number in Redis, read with the rate limit). 0: off.
SERVING_KEY_CACHE_SECONDS = env_int("SERVING_KEY_CACHE_SECONDS", 30, minimum=0)
# Small predict requests score through a compiled twin of the pipeline's preprocessing, used only
# after it has matched the pipeline bit for bit on generated rows (deployments/fastpath.py).
SERVING_COMPILED = env_bool("SERVING_COMPILED", True)
# OpenMP/BLAS threads for a batch job's model: the job's other threads read, validate and write
# the next chunks meanwhile (on 2 cores, 1 scores fastest; raise it on bigger workers).
BATCH_SCORING_THREADS = env_int("BATCH_SCORING_THREADS", 1, minimum=1)
SERVING_THREADS = env_int("SERVING_THREADS", 1, minimum=1)  # OpenMP/BLAS threads per web worker for predict
# The per-minute budget a new deployment API key gets unless its creator sets one ("6000/min").
API_KEY_RATE = env_str("API_KEY_RATE", "6000/min")
API_KEY_RATE_PER_MINUTE = env_rate_per_minute("API_KEY_RATE", API_KEY_RATE)

# --- Experiments ----------------------------------------------------------------------------
EXPERIMENT_PARALLEL_TRIALS = env_int("EXPERIMENT_PARALLEL_TRIALS", 4, minimum=1)  # trials queued at once
# Resamples of the final evaluation's bootstrap (and of monitoring's champion-challenger comparison).
EXPERIMENT_BOOTSTRAP_SAMPLES = env_int("EXPERIMENT_BOOTSTRAP_SAMPLES", 1000, minimum=100)

# --- Email ----------------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND") or (
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend"
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "mlplatform@localhost")

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "mlplatform.api.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "mlplatform.api.StrictQueryParams",
        "django_filters.rest_framework.DjangoFilterBackend",
        "mlplatform.api.SafeOrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "mlplatform.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_PARSER_CLASSES": [
        "mlplatform.jsonguard.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "mlplatform API",
    "DESCRIPTION": "Frame, data, experiments, deployments, review and monitoring of ML projects.",
    "VERSION": API_VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI assets come from our own static files (drf-spectacular-sidecar), no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "jobs.models.JobStatus.choices",
        "VersionStatusEnum": "datasets.models.VersionStatus.choices",
        "ReviewStatusEnum": "deployments.models.ReviewStatus.choices",
        "PredictionStatusEnum": "deployments.models.PredictionStatus.choices",
        "DeploymentStatusEnum": "deployments.models.DeploymentStatus.choices",
        "ReviewModeEnum": "deployments.models.ReviewMode.choices",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
