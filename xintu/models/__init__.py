"""Every table; Alembic imports this package to see them all."""

from xintu.models.admin_user import AdminUser
from xintu.models.base import Base
from xintu.models.classification_cache import ImageClassificationCache
from xintu.models.credit_ledger import CreditLedger
from xintu.models.edit_task import ImageEditTask
from xintu.models.image_cache_claim import ImageCacheClaim
from xintu.models.payment_record import PaymentRecord
from xintu.models.request_log import RequestLog
from xintu.models.user_credits import UserCredits
from xintu.models.wechat_user import WechatUser

__all__ = [
    "AdminUser",
    "Base",
    "CreditLedger",
    "ImageCacheClaim",
    "ImageClassificationCache",
    "ImageEditTask",
    "PaymentRecord",
    "RequestLog",
    "UserCredits",
    "WechatUser",
]
