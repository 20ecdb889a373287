from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts import throttle
from accounts.models import ApiToken
from accounts.services import MAX_TOKEN_DAYS, token_create, token_expiry, token_revoke
from mlplatform.errors import DomainError
from mlplatform.ui import report


class ThrottledAuthenticationForm(AuthenticationForm):
    """The login form; says how long to wait when the account or address is locked."""

    throttled = 0

    def clean(self):
        try:
            return super().clean()
        except ValidationError:
            wait = getattr(self.request, "login_throttled", 0)
            if wait:
                self.throttled = wait
                raise ValidationError(throttle.throttled_message(wait), code="throttled") from None
            raise


class LoginView(auth_views.LoginView):
    """Django's login view behind the shared throttle: 429 with Retry-After while locked."""

    authentication_form = ThrottledAuthenticationForm
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if getattr(form, "throttled", 0):
            response.status_code = 429
            response["Retry-After"] = str(form.throttled)
        return response


class TokenForm(forms.Form):
    name = forms.CharField(max_length=80, required=False)
    expires_in_days = forms.IntegerField(required=False, min_value=1, max_value=MAX_TOKEN_DAYS)


@login_required
def tokens_view(request: HttpRequest) -> HttpResponse:
    new_key = None
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            expires_at = token_expiry(expires_in_days=form.cleaned_data.get("expires_in_days"))
            token, new_key = token_create(
                user=request.user, name=form.cleaned_data.get("name", "").strip() or "api", expires_at=expires_at
            )
        except DomainError as exc:
            report(request, exc, form)
        else:
            when = f" It expires on {token.expires_at:%Y-%m-%d %H:%M} UTC." if token.expires_at else ""
            messages.success(request, f"Token created. Copy it now: it is not shown again.{when}")
            form = TokenForm()
    tokens = ApiToken.objects.filter(user=request.user)
    return render(request, "accounts/tokens.html", {"tokens": tokens, "new_key": new_key, "form": form})


@login_required
@require_POST
def token_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    # Tokens are the user's own, not project-owned: scoped by user instead of the access helper.
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    token_revoke(token=token)
    messages.success(request, f"Token {token.prefix}… revoked.")
    return redirect("accounts:tokens")
