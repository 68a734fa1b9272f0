{{/*
Names, labels and the one place where the agent's setting names live: the environment
variables the Deployment sets, the Secret keys they come from, and the config file path.
If the service renames a setting, change it here only.
*/}}

{{- define "rca-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rca-agent.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "rca-agent.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rca-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rca-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end }}

{{- define "rca-agent.labels" -}}
helm.sh/chart: {{ include "rca-agent.chart" . }}
{{ include "rca-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rca-agent
{{- end }}

{{- define "rca-agent.vllm.fullname" -}}
{{- printf "%s-vllm" (include "rca-agent.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rca-agent.vllm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rca-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: vllm
{{- end }}

{{- define "rca-agent.vllm.labels" -}}
helm.sh/chart: {{ include "rca-agent.chart" . }}
{{ include "rca-agent.vllm.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rca-agent
{{- end }}

{{- define "rca-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rca-agent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The agent's image: repository:tag, and @digest when image.digest is set (the digest is what
the kubelet pulls; the tag stays for people reading the manifest).
*/}}
{{- define "rca-agent.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- with .Values.image.digest }}{{ $ref = printf "%s@%s" $ref . }}{{ end }}
{{- $ref }}
{{- end }}

{{- define "rca-agent.secretName" -}}
{{- default (include "rca-agent.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* Where the ConfigMap is mounted, and the files in it. */}}
{{- define "rca-agent.configDir" -}}/etc/rca{{- end }}
{{- define "rca-agent.dataDir" -}}/data{{- end }}

{{/*
Secret key -> environment variable of the agent, and whether the pod needs the key to start.
"required" keys have no `optional: true`, so a Secret lacking them keeps the pod from starting
with a clear event instead of starting an open service. SQLite mode reads no database URL.
*/}}
{{- define "rca-agent.secretEnv" -}}
api-tokens: {env: RCA_API_TOKENS, required: true}
webhook-token: {env: RCA_WEBHOOK_TOKEN, required: true}
{{- if eq .Values.database.mode "postgresql" }}
database-url: {env: RCA_DATABASE_URL, required: true}
{{- end }}
slack-bot-token: {env: RCA_SLACK_BOT_TOKEN, required: false}
slack-signing-secret: {env: RCA_SLACK_SIGNING_SECRET, required: false}
share-secret: {env: RCA_SERVICE__SHARE_SECRET, required: false}
openai-api-key: {env: RCA_SUMMARIZER__API_KEY, required: false}
embeddings-api-key: {env: RCA_MEMORY__EMBEDDINGS_API_KEY, required: false}
prometheus-bearer-token: {env: RCA_PROMETHEUS__BEARER_TOKEN, required: false}
elasticsearch-api-key: {env: RCA_ELASTICSEARCH__API_KEY, required: false}
elasticsearch-password: {env: RCA_ELASTICSEARCH__PASSWORD, required: false}
{{- end }}

{{/*
Plain (non-secret) environment of the agent container. Host and port are `rca serve` flags
(deployment.yaml): a flag overrides that one setting, while an RCA_SERVICE__* variable would
replace the whole service: section of the config file.
*/}}
{{- define "rca-agent.plainEnv" -}}
- name: RCA_CONFIG
  value: {{ printf "%s/config.yaml" (include "rca-agent.configDir" .) | quote }}
- name: RCA_DATA_DIR
  value: {{ include "rca-agent.dataDir" . | quote }}
- name: MPLCONFIGDIR
  value: /tmp/matplotlib
- name: HOME
  value: /tmp
{{- end }}

{{/* vLLM wiring: the URL and model name the agent's openai backend uses. */}}
{{- define "rca-agent.vllm.baseUrl" -}}
{{- printf "http://%s.%s.svc:%d/v1" (include "rca-agent.vllm.fullname" .) .Release.Namespace (int .Values.vllm.port) }}
{{- end }}

{{/*
The config file (ConfigMap config.yaml): sources, catalog, Slack channel routing, backend.
Chart-derived keys win over `config`, except nested maps, which are merged.
*/}}
{{- define "rca-agent.configFile" -}}
{{- $cfg := deepCopy (default dict .Values.config) }}
{{- $summarizer := default dict (get $cfg "summarizer") }}
{{- if .Values.vllm.enabled }}
{{- $_ := set $cfg "backend" "openai" }}
{{- $_ := set $summarizer "base_url" (include "rca-agent.vllm.baseUrl" .) }}
{{- $_ := set $summarizer "model" .Values.vllm.adapterName }}
{{- else }}
{{- $_ := set $cfg "backend" .Values.summarizer.backend }}
{{- if eq .Values.summarizer.backend "openai" }}
{{- $_ := set $summarizer "model" .Values.summarizer.model }}
{{- with .Values.summarizer.baseUrl }}
{{- $_ := set $summarizer "base_url" . }}
{{- end }}
{{- end }}
{{- end }}
{{- if $summarizer }}
{{- $_ := set $cfg "summarizer" $summarizer }}
{{- end }}
{{- with .Values.sources.prometheusUrl }}
{{- $_ := set $cfg "prometheus_url" . }}
{{- end }}
{{- with .Values.sources.elasticsearchUrl }}
{{- $_ := set $cfg "elasticsearch_url" . }}
{{- end }}
{{- if .Values.catalog }}
{{- $prom := default dict (get $cfg "prometheus") }}
{{- $_ := set $prom "catalog" (printf "%s/catalog.yaml" (include "rca-agent.configDir" .)) }}
{{- $_ := set $cfg "prometheus" $prom }}
{{- end }}
{{- if .Values.runbooks }}
{{- $memory := default dict (get $cfg "memory") }}
{{- $_ := set $memory "runbooks_dir" "/etc/rca-runbooks" }}
{{- $_ := set $cfg "memory" $memory }}
{{- end }}
{{- if .Values.slack.enabled }}
{{- $slack := default dict (get $cfg "slack") }}
{{- with .Values.slack.defaultChannel }}{{ $_ := set $slack "default_channel" . }}{{ end }}
{{- with .Values.slack.routes }}{{ $_ := set $slack "routes" . }}{{ end }}
{{- with .Values.slack.allowedChannels }}{{ $_ := set $slack "allowed_channels" . }}{{ end }}
{{- $public := .Values.slack.publicUrl }}
{{- if and (not $public) .Values.ingress.enabled }}
{{- $public = printf "https://%s" .Values.ingress.host }}
{{- end }}
{{- with $public }}{{ $_ := set $slack "public_url" . }}{{ end }}
{{- $_ := set $cfg "slack" $slack }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/* Fail early, with the fix in the message, on combinations that cannot work. */}}
{{- define "rca-agent.validate" -}}
{{- $postgres := eq .Values.database.mode "postgresql" }}
{{- if and (not .Values.secrets.existingSecret) (or (not .Values.secrets.apiTokens) (not .Values.secrets.webhookToken)) }}
{{- fail "secrets.apiTokens and secrets.webhookToken are required (the chart generates no tokens: they would change on every helm template or Argo CD render): set both, e.g. --set secrets.webhookToken=$(openssl rand -hex 24) --set 'secrets.apiTokens[0]'=$(openssl rand -hex 24):write, or set secrets.existingSecret to a Secret you manage (the GitOps path: External Secrets, Sealed Secrets, Vault)" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not $postgres) }}
{{- fail "replicaCount > 1 needs an external PostgreSQL: set database.mode=postgresql and database.url (or the database-url key of secrets.existingSecret); SQLite serves one replica" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (not $postgres) }}
{{- fail "autoscaling.enabled needs an external PostgreSQL: set database.mode=postgresql and database.url (or the database-url key of secrets.existingSecret); SQLite serves one replica" }}
{{- end }}
{{- if and $postgres (not .Values.secrets.existingSecret) (not .Values.database.url) }}
{{- fail "database.mode=postgresql needs database.url (or the database-url key of secrets.existingSecret)" }}
{{- end }}
{{- if and .Values.vllm.enabled (eq .Values.vllm.modelSource "pvc") (not .Values.vllm.models.existingClaim) }}
{{- fail "vllm.modelSource=pvc needs vllm.models.existingClaim: a claim holding the base model and the adapter" }}
{{- end }}
{{- if and .Values.vllm.enabled (eq .Values.vllm.modelSource "image") (not .Values.vllm.models.image.repository) }}
{{- fail "vllm.modelSource=image needs vllm.models.image.repository: an image holding the base model and the adapter" }}
{{- end }}
{{- end }}
