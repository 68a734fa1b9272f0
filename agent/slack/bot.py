"""The Slack bot: ``/rca``, mentions in incident threads, the rating buttons and the 👎 modal.

:func:`build_bot` returns a slack-bolt ``App`` in HTTP mode; mount it with
:func:`agent.slack.transport.slack_router`. Every handler acks first (Slack wants an answer
within 3 s) and does the slow part afterwards on bolt's worker threads, so the request that
carried it is already answered. Requests without a valid signature (signing secret, 5-minute
replay window) are refused with 401 by bolt's request verification before any handler runs.

Slack's Web API being down must not break ``/rca``: a correctly signed request is authorized
by its signature alone (:class:`BotAuthorize`; bolt's default asks ``auth.test`` first and
fails the request with a 500 when Slack does not answer). ``/rca`` queues its analysis before
it acks, so its answer says the analysis is stored; when ``auth.test`` could not reach Slack,
the ack says so and where the analysis will be served, since the Web API may not deliver it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import SecretStr
from slack_bolt import Ack, App, BoltContext
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.authorize import Authorize
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from agent.errors import ConfigError, RcaError
from agent.models import Analysis
from agent.slack.answers import answer_question
from agent.slack.backend import AnalysisAsk, ReplyTo, SlackBackend
from agent.slack.blocks import (
    ACTION_CORRECT,
    ACTION_RERUN,
    ACTION_WRONG,
    IncidentView,
    fallback_text,
    incident_blocks,
)
from agent.slack.commands import CommandError, parse_command
from agent.slack.modal import FEEDBACK_VIEW, FeedbackOrigin, feedback_modal, read_submission
from agent.slack.publish import publish_incident, report_url
from connectors.slack import SlackError, SlackPublisher, SlackRef

log = logging.getLogger(__name__)

Answerer = Callable[[Analysis, str], str]
SLACK_API_DOWN = "rca_slack_api_down"  # context key: why auth.test failed (Slack unreachable)
AUTH_TEST_TIMEOUT_S = 2  # auth.test runs while Slack waits for the ack (3 s)
AUTH_TEST_RETRY_S = 10.0
_MENTION = re.compile(r"<@[A-Z0-9]+(\|[^>]*)?>")
_RERUN = re.compile(r"^(re-?run|re-?analy[sz]e|again|refresh|update)\b", re.IGNORECASE)


def _author(body: dict[str, Any]) -> str:
    user = body.get("user") or {}
    team = user.get("team_id") or (body.get("team") or {}).get("id")
    return f"slack:{team}/{user.get('id')}" if team else f"slack:{user.get('id')}"


class BotAuthorize(Authorize):
    """Authorize every request that passed the signature check with the bot token; ask who
    the bot is (``auth.test``) once Slack answers, and meanwhile put why it did not in the
    context (``SLACK_API_DOWN``) instead of failing the request.

    ``auth.test`` uses a client of its own, with a short timeout and no retries, and is
    asked again at most every ``AUTH_TEST_RETRY_S`` while it fails, so an outage does not
    delay every ack.
    """

    def __init__(self, client: WebClient, clock: Callable[[], float] = time.monotonic) -> None:
        self.token = client.token
        self.client = WebClient(
            token=client.token, base_url=client.base_url, timeout=AUTH_TEST_TIMEOUT_S
        )
        self.clock = clock
        self._lock = threading.Lock()
        self._identity: SlackResponse | None = None
        self._failure: tuple[float, str] | None = None

    def _who(self) -> tuple[SlackResponse | None, str | None]:
        with self._lock:
            if self._identity is not None:
                return self._identity, None
            if self._failure and self.clock() - self._failure[0] < AUTH_TEST_RETRY_S:
                return None, self._failure[1]
            try:
                self._identity = self.client.auth_test()
                self._failure = None
                return self._identity, None
            except SlackApiError as exc:
                data = exc.response.data if isinstance(exc.response.data, dict) else {}
                why = f"auth.test failed: {data.get('error') or 'error'} "
                why += f"(HTTP {exc.response.status_code})"
            except (SlackClientError, OSError) as exc:  # refused, timed out, DNS
                why = f"cannot reach Slack: {getattr(exc, 'reason', None) or exc}"
            log.warning("slack: Web API unavailable: %s", why)
            self._failure = (self.clock(), why)
            return None, why

    def __call__(
        self,
        *,
        context: BoltContext,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        **_: Any,
    ) -> AuthorizeResult:
        identity, down = self._who()
        if down is not None:
            context[SLACK_API_DOWN] = down
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=team_id,
            user_id=user_id,
            bot_token=self.token,
            bot_id=identity.get("bot_id") if identity else None,
            bot_user_id=identity.get("user_id") if identity else None,
        )


class _Handlers:
    """The bot's listeners; bolt passes ``ack``, ``body``, ``command``... by name."""

    def __init__(
        self,
        backend: SlackBackend,
        publisher: SlackPublisher,
        answer: Answerer,
        poll_s: float,
        now: Callable[[], datetime],
    ) -> None:
        self.backend = backend
        self.publisher = publisher
        self.settings = publisher.settings
        self.tz = ZoneInfo(self.settings.timezone)
        self.answer = answer
        self.poll_s = poll_s
        self.now = now

    # --- running an analysis and delivering it -----------------------------------------

    def _wait(self, analysis_id: str) -> Analysis:
        deadline = time.monotonic() + self.settings.analysis_wait_s
        while (found := self.backend.get_analysis(analysis_id)) is None:
            if time.monotonic() > deadline:
                raise RcaError(f"analysis {analysis_id} did not finish in time; see the API")
            time.sleep(self.poll_s)
        return found

    def _run(self, ask: AnalysisAsk, reply: ReplyTo, previous: Analysis | None = None) -> None:
        try:
            analysis_id = self.backend.submit_analysis(ask, reply)
        except RcaError as exc:
            self._tell(reply.channel, reply.user, f":x: {exc}", reply.thread_ts)
            return
        self._follow(analysis_id, reply, previous, ask.question)

    def _follow(
        self, analysis_id: str, reply: ReplyTo, previous: Analysis | None, question: str | None
    ) -> None:
        """Wait for a queued analysis and deliver it to ``reply``."""
        try:
            analysis = self._wait(analysis_id)
            self._deliver(analysis, reply, previous, question)
        except SlackError as exc:
            log.warning("slack: could not deliver an analysis to %s: %s", reply.channel, exc)
        except RcaError as exc:
            self._tell(reply.channel, reply.user, f":x: {exc}", reply.thread_ts)

    def _deliver(
        self, analysis: Analysis, reply: ReplyTo, previous: Analysis | None, question: str | None
    ) -> None:
        if reply.private:
            report = report_url(self.publisher, analysis.id)
            view = IncidentView(report_url=report, tz=self.tz)
            self.publisher.post_ephemeral(
                reply.channel,
                reply.user,
                fallback_text(analysis, view),
                incident_blocks(analysis, view),
                reply.thread_ts,
            )
            return
        stored = SlackRef(reply.channel, reply.message_ts) if reply.message_ts else None
        ref = publish_incident(
            self.publisher,
            analysis,
            None,
            stored,
            previous=previous,
            chart=self.backend.get_chart(analysis.id),
            channel=reply.channel,
        )
        if ref is not None:
            self.backend.remember_post(analysis.id, ref.channel, ref.ts)
        if ref is not None and question:
            self.publisher.reply(ref, self.answer(analysis, question))

    def _tell(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> None:
        try:
            self.publisher.post_ephemeral(channel, user, text, thread_ts=thread_ts)
        except SlackError as exc:
            log.warning("slack: could not tell %s in %s: %s", user, channel, exc)

    def _announce(self, ask: AnalysisAsk) -> str:
        start, end = (t.astimezone(self.tz) for t in (ask.start, ask.end))
        return (
            f"Analysing {', '.join(f'`{s}`' for s in ask.services)} from "
            f"{start:%H:%M} to {end:%H:%M} {end.tzname()}…"
        )

    # --- /rca ---------------------------------------------------------------------------

    def command(self, ack: Ack, command: dict[str, Any], context: BoltContext) -> None:
        channel, user = command["channel_id"], command["user_id"]
        if not self.settings.allows(channel):
            ack(text="`/rca` is not enabled in this channel.")
            return
        try:
            parsed = parse_command(command.get("text") or "", self.backend.known_services())
        except CommandError as exc:
            ack(text=str(exc))
            return
        start, end = parsed.window(self.now(), self.tz)
        ask = AnalysisAsk(parsed.services, start, end, parsed.question)
        reply = ReplyTo(channel, user, parsed.private)
        try:  # queued before the ack, so that the ack never promises what is not stored
            analysis_id = self.backend.submit_analysis(ask, reply)
        except RcaError as exc:
            ack(text=f":x: {exc}")
            return
        down = context.get(SLACK_API_DOWN)
        ack(text=self._unreachable(analysis_id, down) if down else self._announce(ask))
        self._follow(analysis_id, reply, None, ask.question)

    def _unreachable(self, analysis_id: str, why: str) -> str:
        """The ack when Slack's Web API did not answer: the answer may never be posted here,
        so say where the analysis is served."""
        where = report_url(self.publisher, analysis_id) or f"GET /v1/analyses/{analysis_id}"
        return (
            f":warning: Slack's API is unreachable from rca-agent ({why}), so the answer may "
            f"not be posted here. The analysis `{analysis_id}` runs anyway; read it at {where}."
        )

    # --- mentions in incident threads ---------------------------------------------------

    def mention(self, event: dict[str, Any]) -> None:
        channel, user = event["channel"], event.get("user", "")
        if not self.settings.allows(channel):
            return
        text = _MENTION.sub("", event.get("text") or "").strip()
        thread = event.get("thread_ts")
        here = SlackRef(channel, thread or event["ts"])
        try:
            analysis_id = self.backend.find_incident(channel, thread) if thread else None
            if analysis_id is None:
                self.publisher.reply(
                    here,
                    "I can only talk about incidents I posted: mention me in the thread of an "
                    "incident message, or start one with `/rca <service>`.",
                )
                return
            analysis = self.backend.get_analysis(analysis_id)
            if analysis is None:
                self.publisher.reply(here, "That analysis is still running; ask me again soon.")
            elif not text or _RERUN.match(text):
                self._rerun(analysis, channel, user, here.ts, widen=False)
            else:
                self.publisher.reply(here, self.answer(analysis, text))
        except SlackError as exc:
            log.warning("slack: could not answer a mention in %s: %s", channel, exc)
        except RcaError as exc:
            self._tell(channel, user, f":x: {exc}", thread)

    def _rerun(
        self, analysis: Analysis, channel: str, user: str, message_ts: str, widen: bool
    ) -> None:
        win = analysis.window
        if widen:
            end = win.end
            start = end - 2 * (end - win.incident_start)
        else:
            start, end = win.incident_start, max(win.end, self.now())
        services = tuple(analysis.trigger.services)
        if not services and analysis.root_cause is not None:
            services = (analysis.root_cause.service,)
        ask = AnalysisAsk(services, start, end, analysis.trigger.question)
        if not services:
            self._tell(channel, user, ":x: This analysis names no service to re-run.")
            return
        how = " with a wider window" if widen else ""
        self.publisher.reply(
            SlackRef(channel, message_ts),
            f"🔁 Re-running{how} at the request of <@{user}>: "
            f"{self._announce(ask).removeprefix('Analysing ')}",
        )
        reply = ReplyTo(channel, user, thread_ts=message_ts, message_ts=message_ts)
        self._run(ask, reply, previous=analysis)

    # --- buttons and the modal ----------------------------------------------------------

    def _origin(self, body: dict[str, Any]) -> tuple[str, str, str, str | None]:
        action = (body.get("actions") or [{}])[0]
        container = body.get("container") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id", "")
        ts = None if container.get("is_ephemeral") else container.get("message_ts")
        return str(action.get("value", "")), channel, body["user"]["id"], ts

    def correct(self, ack: Ack, body: dict[str, Any]) -> None:
        ack()
        analysis_id, channel, user, ts = self._origin(body)
        if not self.settings.allows(channel):
            return
        try:
            analysis = self.backend.get_analysis(analysis_id)
            cause = analysis.root_cause if analysis else None
            self.backend.store_feedback(
                analysis_id,
                "correct",
                cause.service if cause else None,
                cause.fault_type if cause else None,
                "",
                _author(body),
            )
        except RcaError as exc:
            self._tell(channel, user, f":x: Feedback not stored: {exc}", ts)
            return
        self._tell(channel, user, f"Thanks, recorded 👍 for `{analysis_id}`.", ts)

    def wrong(self, ack: Ack, body: dict[str, Any]) -> None:
        ack()
        analysis_id, channel, _user, ts = self._origin(body)
        if not self.settings.allows(channel):
            return
        try:
            analysis = self.backend.get_analysis(analysis_id)
        except RcaError:
            analysis = None
        origin = FeedbackOrigin(analysis_id, channel, ts)
        modal = feedback_modal(origin, analysis, self.backend.known_services())
        try:
            self.publisher.open_view(body["trigger_id"], modal)
        except SlackError as exc:
            log.warning("slack: feedback modal not opened: %s", exc)

    def submit(self, ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        origin = FeedbackOrigin.load(view.get("private_metadata", ""))
        answer, errors = read_submission(view)
        if answer is None:
            ack(response_action="errors", errors=errors)
            return
        try:
            self.backend.store_feedback(
                origin.analysis_id,
                "wrong",
                answer.service,
                answer.fault_type,
                answer.note,
                _author(body),
                answer.resolution,
                answer.resolution_url,
            )
        except RcaError as exc:
            ack(response_action="errors", errors={"note": f"Not stored: {exc}"})
            return
        ack()
        self._tell(
            origin.channel,
            body["user"]["id"],
            f"Thanks, recorded 👎 for `{origin.analysis_id}`: it was "
            f"`{answer.service or 'another service'}` ({answer.fault_type.value}).",
            origin.message_ts,
        )

    def rerun(self, ack: Ack, body: dict[str, Any]) -> None:
        ack()
        analysis_id, channel, user, ts = self._origin(body)
        if not self.settings.allows(channel):
            return
        try:
            analysis = self.backend.get_analysis(analysis_id)
        except RcaError as exc:
            self._tell(channel, user, f":x: {exc}", ts)
            return
        if analysis is None:
            self._tell(channel, user, "That analysis is still running.", ts)
        elif ts is None:
            self._tell(channel, user, "Re-run works on channel messages; use `/rca` here.")
        else:
            self._rerun(analysis, channel, user, ts, widen=True)


def build_bot(
    backend: SlackBackend,
    publisher: SlackPublisher,
    signing_secret: SecretStr | None,
    *,
    answer: Answerer = answer_question,
    poll_s: float = 0.5,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    socket_mode: bool = False,
) -> App:
    """The bolt app; ``publisher.client`` (with its base URL and retries) makes every call.

    Over HTTP the signing secret is required; with ``socket_mode`` requests arrive over the
    app's own WebSocket and an HTTP request with any signature is still refused.
    """
    secret = signing_secret.get_secret_value() if signing_secret else ""
    if not secret and not socket_mode:
        raise ConfigError("the Slack bot needs a signing secret: set RCA_SLACK_SIGNING_SECRET")
    if not publisher.client.token:
        raise ConfigError("the Slack bot needs a bot token: set RCA_SLACK_BOT_TOKEN")
    # The App's own client carries no token (bolt would otherwise warn that ``authorize``
    # replaces it); every call the handlers make goes through ``publisher.client``.
    client = publisher.client
    app = App(
        name="rca-agent",
        signing_secret=secret,
        client=WebClient(base_url=client.base_url, timeout=client.timeout),
        authorize=BotAuthorize(client),  # neither startup nor a request needs Slack up
        logger=log,
    )
    handlers = _Handlers(backend, publisher, answer, poll_s, now)
    app.command("/rca")(handlers.command)
    app.event("app_mention")(handlers.mention)
    app.action(ACTION_CORRECT)(handlers.correct)
    app.action(ACTION_WRONG)(handlers.wrong)
    app.action(ACTION_RERUN)(handlers.rerun)
    app.view(FEEDBACK_VIEW)(handlers.submit)
    return app
