"""Test settings: the base settings plus a fast password hasher. Services stay real."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")

from config.settings.base import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
