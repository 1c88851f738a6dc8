"""Auto top-up belongs to an account (personal or team), not to a user; the person whose
card it is stays as ``saved_by``, and refills count against their account's maximum.

Revision ID: 0012_account_top_ups
Revises: 0011_teams
Create Date: 2026-11-30

"""
from alembic import op
import sqlalchemy as sa

revision = "0012_account_top_ups"
down_revision = "0011_teams"
branch_labels = None
depends_on = None

SETTINGS = ("enabled", "threshold_micro_p", "amount_cents", "monthly_max_cents", "stripe_customer_id",
            "stripe_payment_method_id", "card_label", "in_flight_refill_id", "stopped_reason", "updated_at")


def _settings_columns() -> list:
    return [
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("threshold_micro_p", sa.BigInteger(), nullable=True),
        sa.Column("amount_cents", sa.Integer(), nullable=True),
        sa.Column("monthly_max_cents", sa.Integer(), nullable=True),
        sa.Column("stripe_customer_id", sa.String(255), nullable=True),
        sa.Column("stripe_payment_method_id", sa.String(255), nullable=True),
        sa.Column("card_label", sa.String(64), nullable=True),
        sa.Column("in_flight_refill_id", sa.Integer(), nullable=True),
        sa.Column("stopped_reason", sa.String(255), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    ]


def _recreate_settings(keys: list, copy: str) -> None:
    # One row per account: read them, rebuild the table with its new key, write them back
    # (a changed primary key is rebuilt the same way on SQLite and PostgreSQL).
    typed = sa.text(copy).columns(enabled=sa.Boolean(), updated_at=sa.DateTime())
    rows = op.get_bind().execute(typed).mappings().all()
    op.drop_table("auto_top_ups")
    table = op.create_table("auto_top_ups", *keys, *_settings_columns())
    if rows:
        op.bulk_insert(table, [dict(row) for row in rows])


def upgrade():
    columns = ", ".join(f"a.{name}" for name in SETTINGS)
    # Every user who reached Billing has a gateway account; a row without one never watched a balance.
    _recreate_settings([
        sa.Column("account_id", sa.String(64), primary_key=True),
        sa.Column("saved_by", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True)],
        f"SELECT u.account_id AS account_id, a.user_id AS saved_by, {columns} FROM auto_top_ups a "
        "JOIN users u ON u.id = a.user_id WHERE u.account_id IS NOT NULL")
    with op.batch_alter_table("refills") as batch:
        batch.add_column(sa.Column("account_id", sa.String(64), nullable=True))
    op.execute("UPDATE refills SET account_id = (SELECT users.account_id FROM users WHERE users.id = refills.user_id)")
    op.execute("DELETE FROM refills WHERE account_id IS NULL")
    op.drop_index("ix_refills_user_month", table_name="refills")
    with op.batch_alter_table("refills") as batch:
        batch.alter_column("account_id", existing_type=sa.String(64), nullable=False)
        batch.drop_column("user_id")
    op.create_index("ix_refills_account_month", "refills", ["account_id", "month"])


def downgrade():
    # Team accounts' settings and refills have no single user to go back to, and are dropped.
    op.drop_index("ix_refills_account_month", table_name="refills")
    with op.batch_alter_table("refills") as batch:
        batch.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
    op.execute("UPDATE refills SET user_id = (SELECT users.id FROM users WHERE users.account_id = refills.account_id)")
    op.execute("DELETE FROM refills WHERE user_id IS NULL")
    with op.batch_alter_table("refills") as batch:
        batch.alter_column("user_id", existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key("fk_refills_user_id_users", "users", ["user_id"], ["id"], ondelete="CASCADE")
        batch.drop_column("account_id")
    op.create_index("ix_refills_user_month", "refills", ["user_id", "month"])
    columns = ", ".join(f"a.{name}" for name in SETTINGS)
    _recreate_settings(
        [sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)],
        f"SELECT u.id AS user_id, {columns} FROM auto_top_ups a JOIN users u ON u.account_id = a.account_id")
