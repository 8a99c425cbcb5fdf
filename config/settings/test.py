"""Test settings: the base settings plus a fast password hasher. Services stay real."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
# The test client speaks plain HTTP: tests/test_production_settings.py covers HTTPS.
os.environ.setdefault("HTTPS", "false")
# Each test clears the cache, many without a database: tests/test_shared_cache.py covers the shared one.
os.environ.setdefault("CACHE_URL", "locmem")

from config.settings.base import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
# Lets two test runs share one PostgreSQL server without dropping each other's database.
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_DATABASE_NAME") or None}  # noqa: F405
WHITENOISE_AUTOREFRESH = True  # no collected static files in tests
# The suite sends hundreds of requests, bad tokens among them, from one address: rate limits are tested
# on their own (tests/test_throttling.py) with the limits they set.
AUTH_FAILURE_LIMIT = 100_000
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"token": "100000/min"}  # noqa: F405
