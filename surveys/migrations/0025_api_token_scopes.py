from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("surveys", "0024_dataset_line_cache"),
    ]

    operations = [
        # Tokens made before scopes could do everything their owner could: they keep that
        # (every scope); new tokens get what their maker ticks, "read" by default.
        migrations.AddField(
            model_name="staffapitoken",
            name="scopes",
            field=models.CharField(
                default="contacts export read write",
                editable=False,
                help_text="What the key may do, space-separated (surveys.tokens.SCOPES).",
                max_length=64,
            ),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="staffapitoken",
            name="scopes",
            field=models.CharField(
                default="read",
                editable=False,
                help_text="What the key may do, space-separated (surveys.tokens.SCOPES).",
                max_length=64,
            ),
        ),
    ]
