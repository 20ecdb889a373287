from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.models import ApiToken
from accounts.services import token_create, token_revoke


@login_required
def tokens_view(request: HttpRequest) -> HttpResponse:
    new_key = None
    if request.method == "POST":
        _, new_key = token_create(user=request.user, name=request.POST.get("name", "").strip() or "api")
        messages.success(request, "Token created. Copy it now: it is not shown again.")
    tokens = ApiToken.objects.filter(user=request.user)
    return render(request, "accounts/tokens.html", {"tokens": tokens, "new_key": new_key})


@login_required
@require_POST
def token_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    # Tokens are the user's own, not project-owned: scoped by user instead of the access helper.
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    token_revoke(token=token)
    messages.success(request, f"Token {token.prefix}… revoked.")
    return redirect("accounts:tokens")
