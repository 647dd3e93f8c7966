import { KIND_NODE_PORT } from '../profiles/kind.ts';

/** NOTES.txt: how to reach and verify the release. */
export function notesTemplate(): string {
  return `{{- $fullname := include "realtime-gateway.fullname" . -}}
Realtime gateway {{ .Chart.AppVersion }} is installed as release {{ .Release.Name }} in namespace {{ .Release.Namespace }}.

1. Wait for the gateway pods (readiness is GET /readyz):

   kubectl -n {{ .Release.Namespace }} rollout status deployment/{{ $fullname }}
{{- if eq .Values.redis.mode "internal" }}
   kubectl -n {{ .Release.Namespace }} rollout status statefulset/{{ $fullname }}-redis
{{- end }}

2. Reach it:
{{- if eq .Values.entry.kind "gatewayApi" }}
   Gateway {{ $fullname }} (class {{ .Values.entry.className }}) routes to it with cookie "{{ .Values.entry.cookieName }}" session persistence.
   kubectl -n {{ .Release.Namespace }} get gateway/{{ $fullname }} httproute/{{ $fullname }}
   {{- if .Values.entry.host }}
   Open {{ if .Values.entry.tls.enabled }}https{{ else }}http{{ end }}://{{ .Values.entry.host }}/
   {{- else }}
   Open http://<gateway address>:{{ .Values.entry.gatewayApi.listenerPort }}/ (on kind: entry.gatewayApi.envoyProxy.serviceType=NodePort, nodePort=${KIND_NODE_PORT}, then http://localhost:8080/).
   {{- end }}
   The route needs the Gateway API experimental channel (sessionPersistence); with standard-channel CRDs the field is dropped silently.
   {{- if and .Values.entry.gatewayApi.envoyPolicies (not .Values.entry.gatewayApi.parentRefs) }}
   The EnvoyPatchPolicy {{ $fullname }} (sessions stay on draining pods) needs Envoy Gateway's extensionApis.enableEnvoyPatchPolicy=true:
   kubectl -n {{ .Release.Namespace }} get envoypatchpolicy/{{ $fullname }} -o jsonpath='{.status}'
   {{- end }}
{{- else if eq .Values.entry.kind "haproxy" }}
   HAProxy (Deployment {{ $fullname }}-entry) routes to it with cookie "{{ .Values.entry.cookieName }}" stickiness and /readyz checks;
   it finds the gateway pods, draining ones included, through the headless Service {{ $fullname }}-entry-pods.
   kubectl -n {{ .Release.Namespace }} rollout status deployment/{{ $fullname }}-entry
   {{- $h := .Values.entry.haproxy }}
   {{- if eq $h.serviceType "NodePort" }}
   {{- if $h.nodePort }}
   Open http://<node address>:{{ $h.nodePort }}/
   {{- else }}
   Open http://<node address>:<node port>/ with the port from:
   kubectl -n {{ .Release.Namespace }} get service/{{ $fullname }}-entry -o jsonpath='{.spec.ports[0].nodePort}'
   {{- end }}
   {{- else if eq $h.serviceType "LoadBalancer" }}
   kubectl -n {{ .Release.Namespace }} get service/{{ $fullname }}-entry     # EXTERNAL-IP, once the load balancer is up
   Open http://<external IP>:{{ $h.port }}/
   {{- else }}
   Service {{ $fullname }}-entry is ClusterIP: point your edge at port {{ $h.port }}, or
   kubectl -n {{ .Release.Namespace }} port-forward service/{{ $fullname }}-entry 8080:{{ $h.port }}, then http://localhost:8080/
   {{- end }}
   It serves plain HTTP: terminate TLS in front of it.
{{- else }}
   Ingress {{ $fullname }} (class {{ .Values.entry.className }}, {{ .Values.entry.ingress.controller }} annotations) routes to it with cookie "{{ .Values.entry.cookieName }}".
   kubectl -n {{ .Release.Namespace }} get ingress/{{ $fullname }}
{{- end }}
   Without an entry: kubectl -n {{ .Release.Namespace }} port-forward service/{{ $fullname }} 3000:3000, then http://localhost:3000/

3. Verify:
   curl -fsS http://localhost:3000/readyz     # through the port-forward above
   Metrics, fleet stats and the admin endpoint are on the internal port only (no route exposes it; a
   NetworkPolicy admits the drain controller, KEDA and internal.metricsNamespace). Port-forwarding reaches it:
   kubectl -n {{ .Release.Namespace }} port-forward service/{{ $fullname }} {{ .Values.internal.port }}:internal
   curl -fsS http://localhost:{{ .Values.internal.port }}/metrics | head
   curl -fsS http://localhost:{{ .Values.internal.port }}/fleet        # or open http://localhost:{{ .Values.internal.port }}/ (the fleet view)
{{- if eq .Values.autoscaling.mode "hpa" }}
   kubectl -n {{ .Release.Namespace }} get hpa/{{ $fullname }}        # needs metrics-server
{{- else if eq .Values.autoscaling.mode "keda" }}
   kubectl -n {{ .Release.Namespace }} get scaledobject/{{ $fullname }}   # needs KEDA
{{- end }}

Clients authenticate with HS256 JWTs signed with the "jwt-secret" key of Secret {{ .Values.auth.existingSecret | default (printf "%s-auth" $fullname) }}.
`;
}
