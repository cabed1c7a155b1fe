{{/* Names and labels. */}}
{{- define "drbot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "drbot.fullname" -}}
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

{{- define "drbot.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "drbot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component: call with (dict "ctx" $ "component" "bot"). */}}
{{- define "drbot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "drbot.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "drbot.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* A component's service account: call with (dict "ctx" $ "component" "bot"). */}}
{{- define "drbot.serviceAccountName" -}}
{{- $name := (get .ctx.Values.serviceAccount .component).name }}
{{- if .ctx.Values.serviceAccount.create }}
{{- default (printf "%s-%s" (include "drbot.fullname" .ctx) .component) $name }}
{{- else }}
{{- default "default" $name }}
{{- end }}
{{- end }}

{{- define "drbot.slackSecretName" -}}
{{- default (printf "%s-slack" (include "drbot.fullname" .)) .Values.slack.existingSecret }}
{{- end }}

{{- define "drbot.sshSecretName" -}}
{{- default (printf "%s-ssh" (include "drbot.fullname" .)) .Values.ssh.existingSecret }}
{{- end }}

{{- define "drbot.kubeconfigsSecretName" -}}
{{- default (printf "%s-kubeconfigs" (include "drbot.fullname" .)) .Values.kubeconfigs.existingSecret }}
{{- end }}

{{- define "drbot.awsSecretName" -}}
{{- default (printf "%s-aws" (include "drbot.fullname" .)) .Values.aws.existingSecret }}
{{- end }}

{{- define "drbot.redisName" -}}
{{- printf "%s-redis" (include "drbot.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret with the in-release Redis's password: the one named in values, or the chart's. */}}
{{- define "drbot.redisAuthSecretName" -}}
{{- default (printf "%s-auth" (include "drbot.redisName" .)) .Values.redis.internal.auth.existingSecret }}
{{- end }}

{{/* The password's env entry, for the Redis container and for bot and workers. */}}
{{- define "drbot.redisPasswordEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "drbot.redisAuthSecretName" .ctx }}
      key: {{ .ctx.Values.redis.internal.auth.existingSecretKey }}
{{- end }}

{{- define "drbot.sshConfigured" -}}
{{- if or .Values.ssh.existingSecret .Values.ssh.privateKey }}true{{ end }}
{{- end }}

{{- define "drbot.kubeconfigsConfigured" -}}
{{- if or .Values.kubeconfigs.existingSecret .Values.kubeconfigs.files }}true{{ end }}
{{- end }}

{{- define "drbot.awsConfigured" -}}
{{- if or .Values.aws.existingSecret .Values.aws.accessKeyId }}true{{ end }}
{{- end }}

{{/*
Refuse to render a release that cannot work, with a message that says what to set. A bot that
crash-loops at 3 a.m. because REDIS_URL is empty is worse than an install that fails now.
*/}}
{{- define "drbot.validate" -}}
{{- $redisSources := 0 }}
{{- if .Values.redis.url }}{{ $redisSources = add1 $redisSources }}{{ end }}
{{- if .Values.redis.existingSecret }}{{ $redisSources = add1 $redisSources }}{{ end }}
{{- if .Values.redis.internal.enabled }}{{ $redisSources = add1 $redisSources }}{{ end }}
{{- if eq $redisSources 0 }}
{{- fail "drbot needs Redis and none is configured: set redis.url (e.g. redis://redis.example.svc:6379/0), or redis.existingSecret (a Secret with a REDIS_URL key), or redis.internal.enabled=true to run a Redis in this release" }}
{{- end }}
{{- if gt $redisSources 1 }}
{{- fail "drbot needs exactly one Redis: set only one of redis.url, redis.existingSecret and redis.internal.enabled" }}
{{- end }}
{{- /* userinfo with a ':' (redis://user:pass@) or a password= query parameter, as redis-py reads them. */}}
{{- if regexMatch "^[a-z]+://[^/@?]*:[^/@?]*@|[?&]password=" .Values.redis.url }}
{{- fail "redis.url carries a password, which must not sit in values: put the URL in a Secret (kubectl create secret generic drbot-redis --from-literal=REDIS_URL=...) and set redis.existingSecret instead" }}
{{- end }}
{{- if not .Values.slack.existingSecret }}
{{- if not .Values.slack.botToken }}
{{- fail "no Slack credentials: set slack.existingSecret to a Secret with SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (and SLACK_APP_TOKEN for Socket Mode), or set slack.botToken and slack.signingSecret" }}
{{- end }}
{{- if and .Values.slack.socketMode (not .Values.slack.appToken) }}
{{- fail "slack.socketMode=true needs an app-level token: set slack.appToken (xapp-...) or put SLACK_APP_TOKEN in slack.existingSecret" }}
{{- end }}
{{- if not .Values.slack.signingSecret }}
{{- fail "no Slack signing secret (drbot verifies Slack's requests with it, in Socket Mode too): set slack.signingSecret, or use slack.existingSecret" }}
{{- end }}
{{- end }}
{{- if and .Values.ssh.privateKey (not .Values.ssh.knownHosts) (not .Values.ssh.existingSecret) }}
{{- fail "ssh.privateKey is set but ssh.knownHosts is empty: drbot checks host keys, so add the control-plane hosts' known_hosts lines (ssh-keyscan HOST)" }}
{{- end }}
{{- if .Values.clusters }}
{{- if not (include "drbot.sshConfigured" .) }}
{{- fail "clusters are configured but no SSH key is: set ssh.existingSecret (keys id_ed25519 and known_hosts) or ssh.privateKey and ssh.knownHosts" }}
{{- end }}
{{- if not (include "drbot.kubeconfigsConfigured" .) }}
{{- fail "clusters are configured but no kubeconfigs are: set kubeconfigs.existingSecret (one key per cluster name) or kubeconfigs.files" }}
{{- end }}
{{- if not .Values.kubeconfigs.existingSecret }}
{{- range .Values.clusters }}
{{- if and (not .kubeconfig) (not (hasKey $.Values.kubeconfigs.files .name)) }}
{{- fail (printf "cluster %s has no kubeconfig: add kubeconfigs.files.%s, or set kubeconfig on the cluster" .name .name) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The clusters file, with the chart's mount paths as each cluster's defaults. */}}
{{- define "drbot.clustersFile" -}}
{{- $sshDefaults := dict "user" "core" "key" "/etc/drbot/ssh/id_ed25519" "known_hosts" "/etc/drbot/ssh/known_hosts" "port" 22 }}
{{- $clusters := list }}
{{- range .Values.clusters }}
{{- $cluster := deepCopy . }}
{{- $_ := set $cluster "ssh" (merge (deepCopy (default (dict) $cluster.ssh)) $sshDefaults) }}
{{- if not $cluster.kubeconfig }}
{{- $_ := set $cluster "kubeconfig" (printf "/etc/drbot/kubeconfigs/%s" $cluster.name) }}
{{- end }}
{{- $clusters = append $clusters $cluster }}
{{- end }}
{{- toYaml (dict "clusters" $clusters) }}
{{- end }}

{{/*
A component's environment: call with (dict "ctx" $ "component" "bot"). Each process gets only
the secrets it uses: the bot the Slack credentials, the workers the AWS credentials; both Redis.
*/}}
{{- define "drbot.env" -}}
{{- $ctx := .ctx -}}
- name: DRBOT_CONFIG
  value: /etc/drbot/clusters.yaml
- name: HOME
  value: /tmp
{{- if eq .component "bot" }}
- name: SLACK_BOT_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "drbot.slackSecretName" $ctx }}
      key: SLACK_BOT_TOKEN
- name: SLACK_SIGNING_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "drbot.slackSecretName" $ctx }}
      key: SLACK_SIGNING_SECRET
- name: SLACK_APP_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "drbot.slackSecretName" $ctx }}
      key: SLACK_APP_TOKEN
      optional: {{ not $ctx.Values.slack.socketMode }}
{{- with $ctx.Values.slack.apiUrl }}
- name: SLACK_API_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- if $ctx.Values.redis.internal.enabled }}
{{- include "drbot.redisPasswordEnv" (dict "ctx" $ctx "name" "REDIS_PASSWORD") | nindent 0 }}
# Kubernetes expands $(REDIS_PASSWORD) from the entry above, so the password stays in the Secret.
- name: REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:6379/0" (include "drbot.redisName" $ctx) | quote }}
{{- else if $ctx.Values.redis.existingSecret }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $ctx.Values.redis.existingSecret }}
      key: {{ $ctx.Values.redis.existingSecretKey }}
{{- else }}
- name: REDIS_URL
  value: {{ $ctx.Values.redis.url | quote }}
{{- end }}
{{- if eq .component "worker" }}
{{- if include "drbot.awsConfigured" $ctx }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "drbot.awsSecretName" $ctx }}
      key: AWS_ACCESS_KEY_ID
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "drbot.awsSecretName" $ctx }}
      key: AWS_SECRET_ACCESS_KEY
- name: AWS_SESSION_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "drbot.awsSecretName" $ctx }}
      key: AWS_SESSION_TOKEN
      optional: true
{{- end }}
{{- with $ctx.Values.aws.region }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- with $ctx.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* A component's mounts: the clusters file for both, the SSH key and kubeconfigs for workers only. */}}
{{- define "drbot.volumeMounts" -}}
- name: clusters
  mountPath: /etc/drbot/clusters.yaml
  subPath: clusters.yaml
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if eq .component "worker" }}
{{- if include "drbot.sshConfigured" .ctx }}
- name: ssh
  mountPath: /etc/drbot/ssh
  readOnly: true
{{- end }}
{{- if include "drbot.kubeconfigsConfigured" .ctx }}
- name: kubeconfigs
  mountPath: /etc/drbot/kubeconfigs
  readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{- define "drbot.volumes" -}}
{{- $ctx := .ctx -}}
- name: clusters
  configMap:
    name: {{ include "drbot.fullname" $ctx }}-clusters
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- if eq .component "worker" }}
{{- if include "drbot.sshConfigured" $ctx }}
- name: ssh
  secret:
    secretName: {{ include "drbot.sshSecretName" $ctx }}
    # Owner-only, as ssh expects of a private key; fsGroup (podSecurityContext) lets drbot's group read it.
    defaultMode: 0400
{{- end }}
{{- if include "drbot.kubeconfigsConfigured" $ctx }}
- name: kubeconfigs
  secret:
    secretName: {{ include "drbot.kubeconfigsSecretName" $ctx }}
    defaultMode: 0400
{{- end }}
{{- end }}
{{- end }}

{{/*
Pod annotations that roll a component's pods when the clusters file or the inline secrets it uses
change (a new SSH key rolls the workers, not the bot). Call with (dict "ctx" $ "component" "bot").
*/}}
{{- define "drbot.checksums" -}}
{{- $values := .ctx.Values }}
{{- $secrets := dict "slack" $values.slack }}
{{- if eq .component "worker" }}
{{- $secrets = dict "ssh" $values.ssh "kubeconfigs" $values.kubeconfigs "aws" $values.aws }}
{{- end -}}
checksum/clusters: {{ include "drbot.clustersFile" .ctx | sha256sum }}
checksum/secrets: {{ toJson $secrets | sha256sum }}
{{- end }}

{{/*
One egress rule of a NetworkPolicy: TCP to `ports`, limited to the `cidrs` when any are given.
Renders nothing for an empty port list (a rule without ports would allow every port).
*/}}
{{- define "drbot.egressRule" -}}
{{- if .ports -}}
- ports:
    {{- range (uniq .ports) }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
  {{- with .cidrs }}
  to:
    {{- range . }}
    - ipBlock:
        cidr: {{ . | quote }}
    {{- end }}
  {{- end }}
{{- end }}
{{- end }}
