/**
 * GraphQL over HTTP for the common request, straight from node:http.
 *
 * Bots poll `authSession` and agent desktops call `startEndUserAuth` many times a second: a small
 * `POST /graphql` with a JSON body and an API key, from a server (no Origin). `npm run bench`
 * showed yoga's generic path (node:http -> Fetch Request -> request parsers -> envelop hooks ->
 * Fetch Response -> node:http) costing more CPU than the GraphQL execution and the database read
 * together. This path does the same work without the adapters: the same schema, the same
 * validation rules, the same context (`createContext`), the same executor yoga uses
 * (`normalizedExecutor`), the same error masking, and yoga's own result processor for the status
 * and the body. test/graphql runs through it as well as through yoga (the `direct` vitest
 * project), and test/http/graphql-direct.test.ts compares the answers byte for byte.
 *
 * What it does not take, it hands to yoga, unchanged: other methods, paths, media types, an
 * Origin (CORS), bodies over 64 KiB or without Content-Length, extra parameters, batches, and
 * anything that is not a valid query or mutation, so that every error about the request itself is
 * worded by yoga. A request handed over after its body was read gets that body back; nothing has
 * been executed at that point (a request error found while coercing variables is reported by the
 * executor before any resolver runs, so it is handed over too).
 *
 * Envelop plugins given to yoga do not run here: a check that must apply to every GraphQL request
 * (a depth or cost limit, say) goes into graphql/options.ts, which both paths share, and
 * runtime/app.ts refuses to start when yoga is given a plugin outside the list of those this path
 * honours or does not need.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { normalizedExecutor } from '@graphql-tools/executor'
import { sendNodeResponse } from '@whatwg-node/server'
import { getOperationAST, type DocumentNode, type ExecutionResult } from 'graphql'
import { processRegularResult, type YogaServerInstance } from 'graphql-yoga'
import type { GraphQLContext } from '../graphql/context.ts'
import { parseWith, validateWith, type GraphQLOptions } from '../graphql/options.ts'
import { COUNTED } from '../graphql/request-limits.ts'
import type { GraphQLObserver } from '../observability/graphql-operation.ts'

/** Bodies larger than this go to yoga (its limit and its streaming parser apply there). */
export const DIRECT_MAX_BODY_BYTES = 64 * 1024
/** yoga's message for an error it masks. */
const MASKED_MESSAGE = 'Unexpected error.'

type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void

/** How many requests took which way since start: for tests and, later, metrics. */
export interface DirectGraphQLCounts {
  /** Answered by the direct path. */
  answered: number
  /** Read by the direct path, then handed to yoga (a request error, or a form it leaves alone). */
  handedOver: number
  /** Sent to yoga on their method, path or headers alone. */
  passed: number
}

export interface DirectGraphQLOptions {
  readonly yoga: YogaServerInstance<Record<string, unknown>, GraphQLContext>
  /** What yoga parses, validates and masks with, and the context it builds (graphql/options.ts). */
  readonly graphql: GraphQLOptions
  /** Counts, times and traces each operation, as yoga's plugin of the same observer does. */
  readonly observer?: GraphQLObserver
  /** An answer that could not be written (the connection is then closed). */
  readonly onError: (error: unknown) => void
  /**
   * The request's rate limits, before its body is read (graphql/request-limits.ts): null when
   * they are off, else the answer to send when it is over one (or null to go on).
   */
  readonly limit: (req: IncomingMessage) => Promise<LimitedAnswer | null> | null
}

export interface LimitedAnswer {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: string
}

const JSON_CONTENT_TYPE = /^application\/json\s*(?:;\s*charset\s*=\s*"?utf-8"?\s*)?$/i

/**
 * The media type yoga's result processor picks for a result that is not a stream, or null when it
 * would pick another processor (an event stream, multipart) or none (406): yoga's negotiation
 * (graphql-yoga/esm/plugins/result-processor/accept.js and use-result-processor.js), which is not
 * exported. It ignores q-values, skips entries whose charset is not utf-8, and of the entries that
 * match `application/graphql-response+json` or `application/json` takes the first in the header;
 * where one entry matches both (the wildcards), `application/json`.
 */
export function acceptedMediaType(accept: string | undefined): string | null {
  const key = accept ?? ''
  const known = MEDIA_TYPES.get(key)
  if (known !== undefined) return known
  const found = negotiate(accept)
  // Clients send one Accept header or a few; a client varying it cannot grow the map.
  if (MEDIA_TYPES.size < 64 && key.length <= 256) MEDIA_TYPES.set(key, found)
  return found
}

/** acceptedMediaType's answers by header: every poll of a bot sends the same one. */
const MEDIA_TYPES = new Map<string, string | null>()

function negotiate(accept: string | undefined): string | null {
  const entries = (accept || '*/*').replace(/\s/g, '').toLowerCase().split(',')
  for (const entry of entries) {
    const [mediaType = '', ...params] = entry.split(';')
    const charset = params.find((param) => param.includes('charset=')) ?? 'charset=utf-8'
    if (charset !== 'charset=utf-8') continue
    const [type, subtype] = mediaType.split('/')
    const matches = (candidate: string) => {
      const [candidateType, candidateSubtype] = candidate.split('/')
      return (
        (type === '*' || type === candidateType) &&
        (subtype === '*' || subtype === candidateSubtype)
      )
    }
    if (matches('application/json')) return 'application/json'
    if (matches('application/graphql-response+json')) return 'application/graphql-response+json'
  }
  return null
}

interface Params {
  readonly query: string
  readonly variables: Record<string, unknown> | undefined
  readonly operationName: string | undefined
}

/** The body when it is exactly `{ query, variables?, operationName? }` with the right types. */
function paramsOf(body: unknown): Params | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return null
  const record = body as Record<string, unknown>
  for (const key in record) {
    if (key !== 'query' && key !== 'variables' && key !== 'operationName') return null
  }
  const { query, variables, operationName } = record
  if (typeof query !== 'string') return null
  if (variables != null && (typeof variables !== 'object' || Array.isArray(variables))) return null
  if (operationName != null && typeof operationName !== 'string') return null
  return {
    query,
    variables: (variables ?? undefined) as Record<string, unknown> | undefined,
    operationName: operationName ?? undefined,
  }
}

/** A node:http listener: the direct path where it applies, else yoga's own node handler. */
export function directGraphQLHandler(options: DirectGraphQLOptions): {
  readonly handle: NodeHandler
  readonly counts: Readonly<DirectGraphQLCounts>
} {
  const { yoga, graphql } = options
  const counts: DirectGraphQLCounts = { answered: 0, handedOver: 0, passed: 0 }
  const endpoint = yoga.graphqlEndpoint
  const documents = graphql.documentCache
  /** Documents that passed validation (yoga keeps its own verdicts where this path cannot see). */
  const valid = new WeakSet<DocumentNode>()

  /** The valid document for this text, or null when yoga must answer (and word the error). */
  const documentOf = (query: string): DocumentNode | null => {
    let document = documents.get(query)
    if (!document) {
      try {
        document = parseWith(graphql, query)
      } catch {
        return null
      }
      documents.set(query, document)
    }
    if (valid.has(document)) return document
    if (validateWith(graphql, document).length > 0) return null
    valid.add(document)
    return document
  }

  /** Executes the request; false when it should go to yoga instead (nothing was executed). */
  const run = async (
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer,
    mediaType: string,
  ): Promise<boolean> => {
    let parsed: unknown
    try {
      parsed = JSON.parse(body.toString('utf8'))
    } catch {
      return false
    }
    const params = paramsOf(parsed)
    if (!params) return false
    const document = documentOf(params.query)
    if (!document) return false
    const operation = getOperationAST(document, params.operationName)
    if (!operation || operation.operation === 'subscription') return false
    let contextValue: GraphQLContext
    try {
      contextValue = await graphql.context(req.headers.authorization ?? null)
    } catch {
      return false
    }
    let result: ExecutionResult
    try {
      // Queries and mutations without @defer/@stream (the schema has neither) give one result.
      const execute = () =>
        normalizedExecutor({
          schema: graphql.schema,
          document,
          contextValue,
          variableValues: params.variables,
          operationName: params.operationName,
        })
      result = (await (options.observer
        ? options.observer.run(document, params.operationName, execute)
        : execute())) as ExecutionResult
    } catch (error) {
      respond(res, { errors: [graphql.maskError(error, MASKED_MESSAGE)] }, mediaType)
      return true
    }
    // No `data`: a request error (variables) found before any resolver ran; yoga words it.
    if (!('data' in result)) return false
    if (result.errors?.length) {
      result = {
        ...result,
        errors: result.errors.map((error) => graphql.maskError(error, MASKED_MESSAGE)),
      }
    }
    respond(res, result, mediaType)
    return true
  }

  /**
   * A result without errors or extensions is `JSON.stringify(result)` with status 200 in yoga's
   * result processor; anything else goes through that processor itself, which decides the status
   * (from `extensions.http`) and strips internal extensions.
   */
  const respond = (res: ServerResponse, result: ExecutionResult, mediaType: string): void => {
    if (result.errors === undefined && result.extensions === undefined) {
      send(res, 200, { 'Content-Type': `${mediaType}; charset=utf-8` }, JSON.stringify(result))
      return
    }
    const response = processRegularResult(result, yoga.fetchAPI, mediaType)
    response
      .text()
      .then((text) => {
        const headers: Record<string, string> = {}
        response.headers.forEach((value, key) => {
          headers[key] = value
        })
        send(res, response.status, headers, text)
      })
      .catch((error: unknown) => failed(res, error))
  }

  /** Yoga answers a request whose body was already read, from a Fetch Request with that body. */
  const handOver = (req: IncomingMessage, res: ServerResponse, body: Buffer): void => {
    const request = new yoga.fetchAPI.Request(
      `http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`,
      {
        method: req.method ?? 'POST',
        headers: headerPairs(req),
        body: new Uint8Array(body),
      },
    )
    // Counted here already: yoga's rate-limit plugin must not count it again.
    Promise.resolve(yoga.fetch(request, { req, res, [COUNTED]: true }))
      .then((response) => sendNodeResponse(response, res, req, true))
      .catch((error: unknown) => failed(res, error))
  }

  const handle: NodeHandler = (req, res) => {
    const headers = req.headers
    const length = headers['content-length']
    const contentType = headers['content-type']
    const mediaType = acceptedMediaType(headers.accept)
    if (
      req.method !== 'POST' ||
      req.url !== endpoint ||
      mediaType === null ||
      contentType === undefined ||
      !JSON_CONTENT_TYPE.test(contentType) ||
      length === undefined ||
      !/^\d{1,9}$/.test(length) ||
      Number(length) > DIRECT_MAX_BODY_BYTES ||
      headers['transfer-encoding'] !== undefined ||
      headers.origin !== undefined
    ) {
      counts.passed++
      void yoga(req, res)
      return
    }
    const limited = options.limit(req)
    if (limited === null) {
      read(req, res, mediaType)
      return
    }
    limited.then(
      (answer) => {
        if (answer === null) return read(req, res, mediaType)
        counts.answered++
        req.resume()
        send(res, answer.status, { ...answer.headers }, answer.body)
      },
      (error: unknown) => failed(res, error),
    )
  }

  const read = (req: IncomingMessage, res: ServerResponse, mediaType: string): void => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.once('end', () => {
      const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)
      run(req, res, body, mediaType).then(
        (handled) => {
          if (handled) {
            counts.answered++
          } else {
            counts.handedOver++
            handOver(req, res, body)
          }
        },
        (error: unknown) => {
          // Only reachable through a bug in this file: the client gets a masked error, the log the detail.
          counts.answered++
          respond(res, { errors: [graphql.maskError(error, MASKED_MESSAGE)] }, mediaType)
        },
      )
    })
  }
  /** Nothing sensible can be sent any more (the answer is half written or could not be made). */
  const failed = (res: ServerResponse, error: unknown): void => {
    options.onError(error)
    res.destroy()
  }

  return { handle, counts }
}

/** One write: status line, headers and body together. */
function send(
  res: ServerResponse,
  status: number,
  headers: Record<string, string>,
  text: string,
): void {
  headers['content-length'] = String(Buffer.byteLength(text))
  res.writeHead(status, headers)
  res.end(text)
}

function headerPairs(req: IncomingMessage): Array<[string, string]> {
  const pairs: Array<[string, string]> = []
  const raw = req.rawHeaders
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i] as string, raw[i + 1] as string])
  return pairs
}
