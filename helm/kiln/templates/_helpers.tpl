{{/* Names ---------------------------------------------------------------- */}}

{{- define "kiln.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kiln.fullname" -}}
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

{{- define "kiln.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels common to every object; call with (dict "ctx" $ "component" "x"). */}}
{{- define "kiln.labels" -}}
helm.sh/chart: {{ include "kiln.chart" .ctx }}
{{ include "kiln.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: kiln
{{- end }}

{{- define "kiln.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kiln.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "kiln.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kiln.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kiln.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Storage backend with `auto` resolved. */}}
{{- define "kiln.storageBackend" -}}
{{- if eq .Values.storage.backend "auto" }}
{{- if eq .Values.mode "microservices" }}s3{{ else }}filesystem{{ end }}
{{- else }}
{{- .Values.storage.backend }}
{{- end }}
{{- end }}

{{/* The chart's Secret exists when it has something to hold. */}}
{{- define "kiln.hasSecret" -}}
{{- if or .Values.kiln.secretEnv .Values.storage.s3.accessKeyId .Values.storage.s3.secretAccessKey .Values.clusterSecret.value .Values.clusterSecret.accepted }}true{{ end }}
{{- end }}

{{/* Where the pods find the per-tenant overrides (a key of the ConfigMap). */}}
{{- define "kiln.overridesPath" -}}/etc/kiln/overrides.yaml{{- end }}

{{/* Where the credentials Secret is mounted, and its file. */}}
{{- define "kiln.authDir" -}}/etc/kiln-auth{{- end }}
{{- define "kiln.credentialsPath" -}}{{ include "kiln.authDir" . }}/credentials.yaml{{- end }}

{{/* The Secret holding credentials.yaml: the user's, or the chart's. */}}
{{- define "kiln.authSecretName" -}}
{{- default (printf "%s-auth" (include "kiln.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{/* credentials.yaml of the chart's auth Secret. */}}
{{- define "kiln.credentialsFile" -}}
{{- toYaml (dict "credentials" .Values.auth.credentials) }}
{{- end }}

{{/* Fails on auth values Kiln would refuse at start-up. */}}
{{- define "kiln.checkAuth" -}}
{{- if .Values.auth.enabled }}
{{- if and .Values.auth.existingSecret .Values.auth.credentials }}
{{- fail "auth: set auth.existingSecret or auth.credentials, not both" }}
{{- end }}
{{- if not (or .Values.auth.existingSecret .Values.auth.credentials) }}
{{- fail "auth.enabled needs credentials: set auth.credentials or auth.existingSecret (a Secret with a credentials.yaml key)" }}
{{- end }}
{{- range $i, $c := .Values.auth.credentials }}
{{- if and $.Values.multitenancy.enabled (not $c.tenant) }}
{{- fail (printf "auth.credentials[%d]: multitenancy is enabled, so every credential needs a tenant" $i) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Refuses a cluster secret Kiln would refuse (or two of them). */}}
{{- define "kiln.checkClusterSecret" -}}
{{- with .Values.clusterSecret }}
{{- if and .value .existingSecret }}
{{- fail "clusterSecret: set clusterSecret.value or clusterSecret.existingSecret, not both" }}
{{- end }}
{{- if and .value (lt (len .value) 16) }}
{{- fail "clusterSecret.value must be at least 16 characters long" }}
{{- end }}
{{- if and .value (not (regexMatch "^[!-~]+$" .value)) }}
{{- fail "clusterSecret.value must be visible ASCII (no spaces or control characters)" }}
{{- end }}
{{- if and .existingSecret (not .key) }}
{{- fail "clusterSecret.existingSecret needs clusterSecret.key" }}
{{- end }}
{{- if and .accepted (not .value) }}
{{- fail "clusterSecret.accepted needs clusterSecret.value (with existingSecret, use acceptedKey)" }}
{{- end }}
{{- if and .acceptedKey (not .existingSecret) }}
{{- fail "clusterSecret.acceptedKey needs clusterSecret.existingSecret" }}
{{- end }}
{{- end }}
{{- end }}

{{/* DNS name of a pod of a StatefulSet behind its headless service. */}}
{{- define "kiln.podDomain" -}}
{{- printf "%s-headless.%s.svc.%s" .name .ctx.Release.Namespace .ctx.Values.clusterDomain }}
{{- end }}

{{/* Metastore replicas as raft peers: 1@host:port,2@host:port,... */}}
{{- define "kiln.metastorePeers" -}}
{{- $name := printf "%s-metastore" (include "kiln.fullname" .) }}
{{- $domain := include "kiln.podDomain" (dict "ctx" . "name" $name) }}
{{- $peers := list }}
{{- range $i := until (int .Values.metastore.replicas) }}
{{- $peers = append $peers (printf "%d@%s-%d.%s:%d" (add $i 1) $name $i $domain (int $.Values.ports.grpc)) }}
{{- end }}
{{- join "," $peers }}
{{- end }}

{{/* Metastore replicas' gRPC addresses, for every other role. */}}
{{- define "kiln.metastoreAddress" -}}
{{- $name := printf "%s-metastore" (include "kiln.fullname" .) }}
{{- $domain := include "kiln.podDomain" (dict "ctx" . "name" $name) }}
{{- $addrs := list }}
{{- range $i := until (int .Values.metastore.replicas) }}
{{- $addrs = append $addrs (printf "%s-%d.%s:%d" $name $i $domain (int $.Values.ports.grpc)) }}
{{- end }}
{{- join "," $addrs }}
{{- end }}

{{/* kiln.yaml: what the chart derives from the values, with kiln.config merged over it. */}}
{{- define "kiln.config" -}}
{{- $s3 := .Values.storage.s3 }}
{{- $config := dict
  "http_addr" (printf "0.0.0.0:%d" (int .Values.ports.http))
  "grpc_addr" (printf "0.0.0.0:%d" (int .Values.ports.grpc))
  "data_dir" "/var/lib/kiln"
  "storage" (dict
    "backend" (include "kiln.storageBackend" .)
    "s3" (dict
      "bucket" $s3.bucket
      "endpoint" $s3.endpoint
      "region" $s3.region
      "force_path_style" $s3.forcePathStyle
      "allow_http" $s3.allowHttp))
  "multitenancy" (dict "enabled" .Values.multitenancy.enabled)
  "runtime_config" (dict
    "file" (include "kiln.overridesPath" .)
    "period" .Values.runtimeConfig.period)
  "log" (dict "level" .Values.kiln.log.level "format" .Values.kiln.log.format)
}}
{{- if .Values.auth.enabled }}
{{- $_ := set $config "auth" (dict
  "enabled" true
  "credentials_file" (include "kiln.credentialsPath" .)) }}
{{- end }}
{{- if .Values.limits }}
{{- $_ := set $config "limits" (deepCopy .Values.limits) }}
{{- end }}
{{- if eq .Values.mode "microservices" }}
{{- $_ := set $config "metastore" (dict
  "address" (include "kiln.metastoreAddress" .)
  "peers" (include "kiln.metastorePeers" .)) }}
{{- end }}
{{- $merged := mustMergeOverwrite $config (deepCopy .Values.kiln.config) }}
{{- toYaml $merged }}
{{- end }}

{{/* Pod-level fields shared by every workload; call with (dict "ctx" $ "values" .Values.<component>). */}}
{{- define "kiln.podSpec" -}}
serviceAccountName: {{ include "kiln.serviceAccountName" .ctx }}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .ctx.Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ .values.terminationGracePeriodSeconds }}
{{- with (merge (deepCopy .values.nodeSelector) .ctx.Values.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (concat .values.tolerations .ctx.Values.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default .ctx.Values.affinity .values.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Pod template metadata; call with (dict "ctx" $ "component" "x" "values" .Values.<component>). */}}
{{- define "kiln.podMetadata" -}}
labels:
  {{- include "kiln.selectorLabels" . | nindent 2 }}
  {{- with .ctx.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  checksum/config: {{ include "kiln.config" .ctx | sha256sum }}
  {{- if and .ctx.Values.auth.enabled (not .ctx.Values.auth.existingSecret) }}
  {{- /* Kiln reads credentials at start: new ones need new pods. */}}
  checksum/auth: {{ include "kiln.credentialsFile" .ctx | sha256sum }}
  {{- end }}
  {{- with .ctx.Values.clusterSecret.value }}
  {{- /* Kiln reads the cluster secret at start. */}}
  checksum/cluster-secret: {{ printf "%s\n%s" . $.ctx.Values.clusterSecret.accepted | sha256sum }}
  {{- end }}
  {{- with (merge (deepCopy .values.podAnnotations) .ctx.Values.podAnnotations) }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/*
Container fields shared by every kiln container; call with
(dict "ctx" $ "values" .Values.<component> "advertise" "<addr or empty>").
*/}}
{{- define "kiln.containerCommon" -}}
image: {{ include "kiln.image" .ctx }}
imagePullPolicy: {{ .ctx.Values.image.pullPolicy }}
ports:
  - name: http
    containerPort: {{ .ctx.Values.ports.http }}
    protocol: TCP
  - name: grpc
    containerPort: {{ .ctx.Values.ports.grpc }}
    protocol: TCP
env:
  - name: POD_NAME
    valueFrom:
      fieldRef:
        fieldPath: metadata.name
  - name: POD_IP
    valueFrom:
      fieldRef:
        fieldPath: status.podIP
  - name: KILN_INSTANCE_ID
    value: $(POD_NAME)
  {{- with .advertise }}
  - name: KILN_ADVERTISE_ADDR
    value: {{ . | quote }}
  {{- end }}
  {{- with .ctx.Values.clusterSecret.existingSecret }}
  - name: KILN_CLUSTER__SECRET
    valueFrom:
      secretKeyRef:
        name: {{ . | quote }}
        key: {{ $.ctx.Values.clusterSecret.key | quote }}
  {{- with $.ctx.Values.clusterSecret.acceptedKey }}
  - name: KILN_CLUSTER__ACCEPTED_SECRET
    valueFrom:
      secretKeyRef:
        name: {{ $.ctx.Values.clusterSecret.existingSecret | quote }}
        key: {{ . | quote }}
        optional: true
  {{- end }}
  {{- end }}
  {{- with .ctx.Values.kiln.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with .values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- if or (include "kiln.hasSecret" .ctx) .ctx.Values.kiln.existingSecret .ctx.Values.storage.s3.existingSecret }}
envFrom:
  {{- if include "kiln.hasSecret" .ctx }}
  - secretRef:
      name: {{ include "kiln.fullname" .ctx }}
  {{- end }}
  {{- with .ctx.Values.kiln.existingSecret }}
  - secretRef:
      name: {{ . }}
  {{- end }}
  {{- with .ctx.Values.storage.s3.existingSecret }}
  - secretRef:
      name: {{ . }}
  {{- end }}
{{- end }}
readinessProbe:
  httpGet:
    path: /ready
    port: http
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
livenessProbe:
  tcpSocket:
    port: http
  initialDelaySeconds: 10
  periodSeconds: 10
  failureThreshold: 6
resources:
  {{- toYaml .values.resources | nindent 2 }}
securityContext:
  {{- toYaml .ctx.Values.securityContext | nindent 2 }}
volumeMounts:
  - name: config
    mountPath: /etc/kiln
    readOnly: true
  {{- if .ctx.Values.auth.enabled }}
  - name: auth
    mountPath: {{ include "kiln.authDir" .ctx }}
    readOnly: true
  {{- end }}
  - name: data
    mountPath: /var/lib/kiln
  - name: tmp
    mountPath: /tmp
{{- end }}

{{/* The kiln arguments; call with (dict "ctx" $ "values" .Values.<component> "target" "x"). */}}
{{- define "kiln.args" -}}
- --config=/etc/kiln/kiln.yaml
- --target={{ .target }}
{{- range (concat .ctx.Values.kiln.extraArgs .values.extraArgs) }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* Volumes of every pod; `data` is added here unless the workload claims it. */}}
{{- define "kiln.volumes" -}}
- name: config
  configMap:
    name: {{ include "kiln.fullname" .ctx }}
{{- if .ctx.Values.auth.enabled }}
- name: auth
  secret:
    secretName: {{ include "kiln.authSecretName" .ctx }}
    items:
      - key: credentials.yaml
        path: credentials.yaml
{{- end }}
- name: tmp
  emptyDir: {}
{{- if not .persistent }}
- name: data
  emptyDir: {}
{{- end }}
{{- end }}

{{/* A volumeClaimTemplate named data; call with the component's persistence values. */}}
{{- define "kiln.dataClaim" -}}
- metadata:
    name: data
  spec:
    accessModes:
      {{- toYaml .accessModes | nindent 6 }}
    {{- with .storageClass }}
    storageClassName: {{ . }}
    {{- end }}
    resources:
      requests:
        storage: {{ .size }}
{{- end }}

{{/*
A Service for a component; call with (dict "ctx" $ "component" "x" "headless" bool "metrics" bool).
Headless services publish not-ready pods too: raft peers and ingesters must
find each other before they are ready.
*/}}
{{- define "kiln.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "kiln.fullname" .ctx }}-{{ .component }}{{ if .headless }}-headless{{ end }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "kiln.labels" . | nindent 4 }}
    {{- if .metrics }}
    kiln.dev/metrics: "true"
    {{- end }}
  {{- if not .headless }}
  {{- with .ctx.Values.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- end }}
spec:
  {{- if .headless }}
  clusterIP: None
  publishNotReadyAddresses: true
  {{- else }}
  type: {{ .ctx.Values.service.type }}
  {{- end }}
  ports:
    - name: http
      port: {{ .ctx.Values.ports.http }}
      targetPort: http
      protocol: TCP
    - name: grpc
      port: {{ .ctx.Values.ports.grpc }}
      targetPort: grpc
      protocol: TCP
  selector:
    {{- include "kiln.selectorLabels" . | nindent 4 }}
{{- end }}

{{/* A PodDisruptionBudget; call with (dict "ctx" $ "component" "x" "values" .Values.<component>). */}}
{{- define "kiln.pdb" -}}
{{- if .values.podDisruptionBudget.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "kiln.fullname" .ctx }}-{{ .component }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "kiln.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "kiln.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}

{{/* A HorizontalPodAutoscaler; call with (dict "ctx" $ "component" "x" "values" .Values.<component>). */}}
{{- define "kiln.hpa" -}}
{{- if .values.autoscaling.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "kiln.fullname" .ctx }}-{{ .component }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "kiln.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "kiln.fullname" .ctx }}-{{ .component }}
  minReplicas: {{ .values.autoscaling.minReplicas }}
  maxReplicas: {{ .values.autoscaling.maxReplicas }}
  metrics:
    {{- with .values.autoscaling.targetCPUUtilizationPercentage }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
    {{- with .values.autoscaling.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
{{- end }}
{{- end }}

{{/*
A stateless role as a Deployment; call with
(dict "ctx" $ "component" "x" "values" .Values.<component>).
*/}}
{{- define "kiln.deployment" -}}
{{- $ctx := merge (dict "advertise" (printf "$(POD_IP):%d" (int .ctx.Values.ports.grpc))) . }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "kiln.fullname" .ctx }}-{{ .component }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "kiln.labels" . | nindent 4 }}
spec:
  {{- if not .values.autoscaling.enabled }}
  replicas: {{ .values.replicas }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "kiln.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      {{- include "kiln.podMetadata" . | nindent 6 }}
    spec:
      {{- include "kiln.podSpec" . | nindent 6 }}
      containers:
        - name: {{ .component }}
          args:
            {{- include "kiln.args" (merge (dict "target" .component) .) | nindent 12 }}
          {{- include "kiln.containerCommon" $ctx | nindent 10 }}
      volumes:
        {{- include "kiln.volumes" (dict "ctx" .ctx "persistent" false) | nindent 8 }}
{{- end }}
