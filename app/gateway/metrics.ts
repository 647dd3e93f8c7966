import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

/** Every metric the gateway exports at /metrics; default Node metrics include event-loop lag. */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 20 });
  const registers = [registry];
  return {
    registry,
    connectedSockets: new Gauge({ name: 'rt_connected_sockets', help: 'Sockets connected to this instance.', registers }),
    connections: new Counter({ name: 'rt_connections_total', help: 'Accepted Socket.IO connections, by initial transport.', labelNames: ['transport'], registers }),
    disconnections: new Counter({ name: 'rt_disconnections_total', help: 'Socket.IO disconnections, by reason.', labelNames: ['reason'], registers }),
    handshakeRefusals: new Counter({ name: 'rt_handshake_refusals_total', help: 'Refused handshakes, by error code.', labelNames: ['code'], registers }),
    messagesIn: new Counter({ name: 'rt_messages_in_total', help: 'Inbound events, by event name and outcome (ok or the error code).', labelNames: ['event', 'outcome'], registers }),
    publishes: new Counter({
      name: 'rt_publishes_total',
      help: 'Publishes, by namespace (never by room), source (client publish, server API, demo operation) and outcome (ok, duplicate, or the error code).',
      labelNames: ['namespace', 'source', 'outcome'],
      registers,
    }),
    joins: new Counter({ name: 'rt_joins_total', help: 'Room joins, by namespace (never by room) and outcome (ok or the error code).', labelNames: ['namespace', 'outcome'], registers }),
    messagesOut: new Counter({ name: 'rt_messages_out_total', help: 'Envelopes sent to clients (one per recipient), by type.', labelNames: ['type'], registers }),
    resumes: new Counter({ name: 'rt_resumes_total', help: 'Room joins served, by how: replay, reset (gap older than history) or fresh.', labelNames: ['mode'], registers }),
    replayedEnvelopes: new Counter({ name: 'rt_replayed_envelopes_total', help: 'Envelopes sent from history to resuming clients.', registers }),
    historyMisses: new Counter({ name: 'rt_history_misses_total', help: 'Resumes whose gap was older than history (answered with room:reset).', registers }),
    recoveries: new Counter({
      name: 'rt_recovery_attempts_total',
      help: 'Stock-client reconnects that asked for connection state recovery, by outcome: restored, or why not (malformed, unknown, expired, mismatch, history, unavailable, other_user).',
      labelNames: ['outcome'],
      registers,
    }),
    sseStreams: new Gauge({ name: 'rt_sse_streams', help: 'Open SSE streams.', registers }),
    inboundRefusals: new Counter({
      name: 'rt_inbound_refusals_total',
      help: 'Connections closed by the inbound parser, by why: binary (frames or attachments), pre_auth_size (a frame over 16 KiB before authentication), byte_rate (INBOUND_BYTES_PER_SECOND, each frame costing at least 256 bytes), packet_rate (more than 5 Engine.IO control packets a second, burst 20).',
      labelNames: ['why'],
      registers,
    }),
    unauthenticatedCloses: new Counter({
      name: 'rt_unauthenticated_transport_closes_total',
      help: 'Engine.IO transports that closed without a Socket.IO connection: CONNECT_TIMEOUT_MS passed, the CONNECT was refused, or the peer left first.',
      registers,
    }),
    presenceSweptEntries: new Counter({
      name: 'rt_presence_swept_entries_total',
      help: 'Presence entries (one user in one room) of dead gateway processes this instance removed.',
      registers,
    }),
    presenceSweepLeaves: new Counter({
      name: 'rt_presence_sweep_leaves_total',
      help: 'presence:leave events this instance sent for users whose last connection was on a dead gateway process.',
      registers,
    }),
    presenceSweeps: new Counter({
      name: 'rt_presence_sweeps_total',
      help: 'Dead gateway processes this instance swept, by outcome: complete, partial (entries not expired yet: retried) or failed (Redis).',
      labelNames: ['outcome'],
      registers,
    }),
    backplaneUp: new Gauge({ name: 'rt_backplane_up', help: '1 while every backplane connection is up.', registers }),
    ready: new Gauge({ name: 'rt_ready', help: '1 while /readyz answers 200.', registers }),
    drainInProgress: new Gauge({ name: 'rt_drain_in_progress', help: '1 from the start of a drain (SIGTERM or POST /admin/drain) until the process exits.', registers }),
    drainRemainingSockets: new Gauge({ name: 'rt_drain_remaining_sockets', help: 'Sockets still connected to this draining instance (0 when not draining).', registers }),
    drainCloses: new Counter({ name: 'rt_drain_closes_total', help: 'Sockets closed by the paced drain (`rate()` of it is closes/s), by how: paced, or forced at the deadline.', labelNames: ['how'], registers }),
    drainPlannedRate: new Gauge({ name: 'rt_drain_planned_closes_per_second', help: 'The close rate the current drain aims at (0 when not draining).', registers }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
