/**
 * OpenTelemetry traces over OTLP/HTTP (JSON), on when OTEL_EXPORTER_OTLP_ENDPOINT (or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set. main.ts imports this module only then, and before
 * anything it instruments is loaded; otherwise none of OpenTelemetry is loaded at all. The SDK
 * reads the other standard OTEL_* variables itself (headers, timeouts, sampler, batch delay,
 * OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES).
 *
 * What is traced: incoming HTTP requests (named by route template), each GraphQL operation (on
 * yoga and on the direct path, which share graphql-operation.ts's observer: neither uses graphql's
 * own `execute`, so an instrumentation patching graphql would not see them), PostgreSQL queries
 * (pg), provider calls (a span per step around undici's own request span).
 *
 * What is never recorded: every span passes through `scrubSpan` before export. Paths become route
 * templates on server spans (`/l/:token`), query strings and fragments are dropped from every URL,
 * user names and passwords from every URL, header attributes and query parameter values are
 * dropped, and pg's parameter values are off (the statement is Kysely's parameterised text).
 */
import { createRequire } from 'node:module'
import {
  context,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type AttributeValue,
  type Span,
} from '@opentelemetry/api'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { registerInstrumentations } from '@opentelemetry/instrumentation'
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http'
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg'
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici'
import {
  defaultResource,
  detectResources,
  envDetector,
  resourceFromAttributes,
} from '@opentelemetry/resources'
import {
  BatchSpanProcessor,
  type ReadableSpan,
  type SpanExporter,
  type TimedEvent,
} from '@opentelemetry/sdk-trace-base'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { setGraphQLOperationTracer } from './graphql-operation.ts'
import { setProviderCallTracer, type ProviderCallTracer } from './metrics.ts'
import { routeTemplate } from './route-template.ts'

const TRACER_NAME = 'end-user-oauth'

export interface Tracing {
  /** Sends what is buffered and stops, within SHUTDOWN_MS; call before the process exits. */
  shutdown(): Promise<void>
}

/** An unreachable collector must not hold up the exit past this. */
export const SHUTDOWN_MS = 3_000

export function startTracing(): Tracing {
  const resource = defaultResource()
    .merge(resourceFromAttributes({ 'service.name': 'end-user-oauth' }))
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the defaults.
    .merge(detectResources({ detectors: [envDetector] }))
  const provider = new NodeTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(new ScrubbingExporter(new OTLPTraceExporter()))],
  })
  provider.register()

  registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      new HttpInstrumentation({
        // Only requests to the service: the outbound client uses undici, and the exporter's own
        // requests must not be traced.
        ignoreOutgoingRequestHook: () => true,
        // Prometheus scrapes of the metrics listener (the public port answers /metrics with 404).
        ignoreIncomingRequestHook: (request) => request.url === '/metrics',
        requestHook: (span, request) => {
          if (!('headers' in request) || typeof request.url !== 'string') return
          const route = routeTemplate(request.url)
          span.setAttribute('http.route', route)
          span.updateName(`${request.method ?? 'HTTP'} ${route}`)
        },
      }),
      new UndiciInstrumentation(),
      // No parameter values, ever: only the parameterised statement text.
      new PgInstrumentation({ enhancedDatabaseReporting: false, requireParentSpan: true }),
    ],
  })
  // The instrumentations patch modules as they are required; the service's ESM imports of these
  // CommonJS modules then reuse the patched instances from the require cache. They must not have
  // been loaded before this point (main.ts imports the rest of the service afterwards).
  const require = createRequire(import.meta.url)
  require('node:http')
  require('pg')

  const tracer = trace.getTracer(TRACER_NAME)
  const inSpan = async <T>(
    span: Span,
    call: () => Promise<T>,
    failed: (result: T) => boolean,
  ): Promise<T> => {
    try {
      const result = await context.with(trace.setSpan(context.active(), span), call)
      if (failed(result)) span.setStatus({ code: SpanStatusCode.ERROR })
      return result
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: errorName(error) })
      throw error
    } finally {
      span.end()
    }
  }

  setGraphQLOperationTracer((operation, call, failed) =>
    inSpan(
      tracer.startSpan(`${operation.type} ${operation.name}`, {
        attributes: {
          'graphql.operation.type': operation.type,
          'euo.graphql.root_field': operation.name,
        },
      }),
      call,
      failed,
    ),
  )
  const providerCall: ProviderCallTracer = (step, url, call) =>
    inSpan(
      tracer.startSpan(`provider ${step}`, {
        kind: SpanKind.INTERNAL,
        attributes: { 'euo.provider.step': step, 'server.address': hostOf(url) },
      }),
      call,
      (answer) => answer.status < 200 || answer.status >= 300,
    )
  setProviderCallTracer(providerCall)

  return {
    async shutdown() {
      setGraphQLOperationTracer(null)
      setProviderCallTracer(null)
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        provider.shutdown().catch(() => undefined),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, SHUTDOWN_MS)
        }),
      ])
      clearTimeout(timer)
    },
  }
}

function hostOf(url: string | URL | Request): string {
  try {
    return new URL(typeof url === 'string' || url instanceof URL ? url : url.url).hostname
  } catch {
    return ''
  }
}

/** An error's class name only: messages may quote URLs or provider answers. */
function errorName(error: unknown): string {
  return error instanceof Error ? error.name : typeof error
}

// ---------------------------------------------------------------------------------------------
// Scrubbing

/** Attributes whose value is a URL or a path (old and current HTTP conventions). */
const URL_KEYS = new Set([
  'http.url',
  'http.target',
  'url.full',
  'url.path',
  'db.connection_string',
])
/** Attributes dropped whatever their value. */
const DROPPED_KEY =
  /(^|\.)(url\.query|http\.request\.header|http\.response\.header|db\.postgresql\.values|db\.query\.parameter)|authorization|cookie|api[-_]?key|secret|password/i

/** A URL or a path without userinfo, query or fragment; on a server span, as its route template. */
export function scrubUrl(value: string, server: boolean): string {
  let parsed: URL | null
  try {
    parsed = new URL(value)
  } catch {
    parsed = null
  }
  if (parsed) {
    if (server) return `${parsed.protocol}//${parsed.host}${routeTemplate(parsed.pathname)}`
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`
  }
  const path = value.split(/[?#]/, 1)[0] ?? ''
  return server ? routeTemplate(path) : path
}

export function scrubAttributes(attributes: Attributes, server: boolean): Attributes {
  const clean: Attributes = {}
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || DROPPED_KEY.test(key)) continue
    clean[key] =
      URL_KEYS.has(key) && typeof value === 'string'
        ? scrubUrl(value, server)
        : (value as AttributeValue)
  }
  return clean
}

/** The span as exported: its own values, with scrubbed name, attributes and events. */
export function scrubSpan(span: ReadableSpan): ReadableSpan {
  const server = span.kind === SpanKind.SERVER
  const events: TimedEvent[] = span.events.map((event) => ({
    ...event,
    ...(event.attributes && { attributes: scrubEventAttributes(event.attributes, server) }),
  }))
  // Everything else is read through the prototype: the span itself.
  return Object.create(span, {
    name: { value: server ? scrubServerName(span.name) : span.name, enumerable: true },
    attributes: { value: scrubAttributes(span.attributes, server), enumerable: true },
    events: { value: events, enumerable: true },
  }) as ReadableSpan
}

/** Exception messages may quote a URL with its query: dropped with the rest of the query. */
function scrubEventAttributes(attributes: Attributes, server: boolean): Attributes {
  const clean = scrubAttributes(attributes, server)
  const message = clean['exception.message']
  if (typeof message === 'string') clean['exception.message'] = message.replace(/\?\S*/g, '')
  delete clean['exception.stacktrace']
  return clean
}

/** `GET /l/abc` (a name set before the route was known) → `GET /l/:token`. */
function scrubServerName(name: string): string {
  const [method, path] = name.split(' ', 2)
  return path === undefined ? name : `${method} ${routeTemplate(path)}`
}

class ScrubbingExporter implements SpanExporter {
  readonly #inner: SpanExporter
  constructor(inner: SpanExporter) {
    this.#inner = inner
  }
  export(spans: ReadableSpan[], done: Parameters<SpanExporter['export']>[1]): void {
    this.#inner.export(spans.map(scrubSpan), done)
  }
  shutdown(): Promise<void> {
    return this.#inner.shutdown()
  }
  forceFlush(): Promise<void> {
    return this.#inner.forceFlush?.() ?? Promise.resolve()
  }
}
