{{/* Name prefix of every object: the release name, or "nodemesh" when the release is named after the chart. */}}
{{- define "nodemesh.fullname" -}}
{{- if eq .Release.Name .Chart.Name -}}
{{- .Chart.Name -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "nodemesh.labels" -}}
app.kubernetes.io/name: nodemesh
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* selector labels of one component: include "nodemesh.selector" (list . "agent") */}}
{{- define "nodemesh.selector" -}}
app.kubernetes.io/name: nodemesh
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* image of a component: include "nodemesh.image" (list . .Values.agent.image) */}}
{{- define "nodemesh.image" -}}
{{- $img := index . 1 -}}
{{- printf "%s:%s" $img.repository (default (index . 0).Chart.AppVersion $img.tag) -}}
{{- end -}}

{{- define "nodemesh.nodeNameEnv" -}}
- name: NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
{{- end -}}

{{/* The kubeConfigPath file, mounted where the flag names it (nothing when unset). */}}
{{- define "nodemesh.kubeconfigMount" -}}
{{- with .Values.kubeConfigPath -}}
- name: kubeconfig
  mountPath: {{ . }}
  readOnly: true
{{- end -}}
{{- end -}}

{{- define "nodemesh.kubeconfigVolume" -}}
{{- with .Values.kubeConfigPath -}}
- name: kubeconfig
  hostPath:
    path: {{ . }}
    type: File
{{- end -}}
{{- end -}}

{{/* The --ingress-* flags, the same for the agent and the controller. */}}
{{- define "nodemesh.ingressArgs" -}}
{{- $i := .Values.ingressController -}}
{{- if and (not $i.defaultSecretNamespace) $i.defaultSecretName -}}
{{- fail "ingressController.defaultSecretName needs ingressController.defaultSecretNamespace" -}}
{{- end -}}
{{- if and $i.defaultSecretNamespace (not $i.defaultSecretName) -}}
{{- fail "ingressController.defaultSecretNamespace needs ingressController.defaultSecretName" -}}
{{- end -}}
{{- if $i.enabled -}}
- --ingress-class={{ $i.className }}
- --ingress-loadbalancer-mode={{ $i.loadbalancerMode }}
{{- if $i.default }}
- --ingress-default
{{- end }}
{{- if $i.enforceHttps }}
- --ingress-enforce-https
{{- end }}
{{- if $i.defaultSecretName }}
- --ingress-default-certificate={{ $i.defaultSecretNamespace }}/{{ $i.defaultSecretName }}
{{- end }}
{{- if $i.hostNetwork.enabled }}
- --ingress-host-network
- --ingress-host-network-shared-port={{ $i.hostNetwork.sharedListenerPort }}
{{- end }}
{{- else -}}
- --enable-ingress-controller=false
{{- end -}}
{{- end -}}

{{/*
A matchLabels map as a label selector (key=value,...), keys sorted, as
--gateway-host-network-nodes reads it.
*/}}
{{- define "nodemesh.matchLabels" -}}
{{- $pairs := list -}}
{{- range $k := keys . | sortAlpha -}}
{{- $pairs = append $pairs (printf "%s=%s" $k (index $ $k)) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}
