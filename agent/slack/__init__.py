"""Slack: the incident message (Block Kit), the ``/rca`` command and the bolt bot.

``blocks`` renders an analysis; ``publish`` posts or updates it through
:class:`connectors.slack.SlackPublisher`; ``commands`` parses ``/rca``; ``bot`` builds the
slack-bolt app that the service mounts at ``/slack/events``. See ``docs/slack.md``.
"""
