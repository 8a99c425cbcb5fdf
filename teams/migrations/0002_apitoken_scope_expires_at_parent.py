# Token scopes, expiry and the parent link (revoke-with-children).

from datetime import timedelta

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def expire_existing_tokens(apps, schema_editor):
    """Tokens made before expiry existed live the maximum lifetime from their creation."""
    ApiToken = apps.get_model("teams", "ApiToken")
    days = getattr(settings, "API_TOKEN_MAX_TTL_DAYS", 365)
    ApiToken.objects.filter(expires_at__isnull=True).update(expires_at=models.F("created_at") + timedelta(days=days))


class Migration(migrations.Migration):

    dependencies = [
        ("teams", "0001_initial"),
    ]

    operations = [
        # Existing tokens get "write": what a token created by a signed-in user gets by default now.
        migrations.AddField(
            model_name="apitoken",
            name="scope",
            field=models.CharField(
                choices=[
                    ("read", "Read: safe methods only"),
                    ("write", "Write: read and change data"),
                    ("admin", "Admin: write, and create or revoke tokens"),
                ],
                default="write",
                help_text="read < write < admin.",
                max_length=8,
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="apitoken",
            name="expires_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.RunPython(expire_existing_tokens, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="apitoken",
            name="expires_at",
            field=models.DateTimeField(help_text="The token is refused from this moment on."),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                help_text="The token that created this one; empty when created by a signed-in user.",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="children",
                to="teams.apitoken",
            ),
        ),
    ]
