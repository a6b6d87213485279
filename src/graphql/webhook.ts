/**
 * Webhook endpoints and their deliveries (ADMIN keys only, reads included: endpoint URLs and
 * delivery outcomes are the tenant's configuration). Validation is the service's
 * (services/webhooks.ts); GraphQL checks the types.
 */
import {
  payloadTypeOf,
  REPORTED_STATUSES,
  WEBHOOK_DELIVERY_STATUSES,
  WEBHOOK_EVENT_TYPES,
  type WebhookDeliveryStatus,
  type WebhookEventType,
} from '../core/webhook.ts'
import {
  createWebhookEndpoint,
  deleteWebhookEndpoint,
  DELIVERIES_DEFAULT,
  DELIVERIES_MAX,
  listWebhookDeliveries,
  listWebhookEndpoints,
  redeliverWebhook,
  rotateWebhookSecret,
  updateWebhookEndpoint,
  type EndpointWithSecret,
  type WebhookDelivery,
  type WebhookEndpoint,
} from '../services/webhooks.ts'
import { builder } from './builder.ts'
import { principalOf } from './context.ts'
import { DeletePayload } from './oauth-integration.ts'

const STATUS_OF_TYPE = Object.fromEntries(
  Object.entries(REPORTED_STATUSES).map(([status, type]) => [type, status]),
) as Record<WebhookEventType, string>

export const WebhookEventTypeEnum = builder.enumType('WebhookEventType', {
  description: 'A session change a webhook endpoint may be told of.',
  values: Object.fromEntries(
    WEBHOOK_EVENT_TYPES.map((type) => [
      type,
      {
        description: `A sign-in became ${STATUS_OF_TYPE[type]} (payload type ${payloadTypeOf(type)}).`,
      },
    ]),
  ) as Record<WebhookEventType, { description: string }>,
})

const DELIVERY_STATUS_DESCRIPTIONS = {
  PENDING: 'Not delivered yet: the next attempt is due at nextAttemptAt.',
  DELIVERED: 'The endpoint answered 2xx.',
  FAILED: 'Every attempt failed; no more are made (redeliverWebhook sends it again).',
} as const satisfies Record<WebhookDeliveryStatus, string>

const WebhookDeliveryStatusEnum = builder.enumType('WebhookDeliveryStatus', {
  description: 'Where a delivery stands.',
  values: Object.fromEntries(
    WEBHOOK_DELIVERY_STATUSES.map((s) => [s, { description: DELIVERY_STATUS_DESCRIPTIONS[s] }]),
  ) as Record<WebhookDeliveryStatus, { description: string }>,
})

const WebhookEndpointRef = builder.objectRef<WebhookEndpoint>('WebhookEndpoint').implement({
  description:
    "A URL that is sent the tenant's session events, signed as the Standard Webhooks specification says. The secret is shown only by createWebhookEndpoint and rotateWebhookSecret.",
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The endpoint id (a UUID).' }),
    url: t.exposeString('url', { description: 'Where deliveries are POSTed.' }),
    events: t.field({
      type: [WebhookEventTypeEnum],
      description: 'The event types it is sent.',
      resolve: (e) => [...e.events],
    }),
    enabled: t.exposeBoolean('enabled', {
      description:
        'Whether it is sent anything. Turned off by an admin, or by the service after every attempt failed for 3 days (with an audit record); deliveries wait while it is off.',
    }),
    description: t.exposeString('description', { nullable: true, description: 'A note.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When it was created.' }),
  }),
})

const WebhookDeliveryRef = builder.objectRef<WebhookDelivery>('WebhookDelivery').implement({
  description: 'One event on its way to one endpoint, with its attempts so far.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The delivery id.' }),
    eventId: t.exposeID('eventId', {
      description: 'The event id: the webhook-id header, the same on every attempt and redelivery.',
    }),
    eventType: t.field({
      type: WebhookEventTypeEnum,
      description: 'What happened.',
      resolve: (d) => d.eventType,
    }),
    status: t.field({
      type: WebhookDeliveryStatusEnum,
      description: 'Where it stands.',
      resolve: (d) => d.status,
    }),
    attempts: t.exposeInt('attempts', { description: 'Attempts made so far.' }),
    lastStatusCode: t.exposeInt('lastStatusCode', {
      nullable: true,
      description: "The HTTP status of the last attempt's answer; null when none came.",
    }),
    lastError: t.exposeString('lastError', {
      nullable: true,
      description:
        'Why the last attempt failed (a status, a timeout, a refused address), in one short line; null after a success.',
    }),
    nextAttemptAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When the next attempt is due; null once DELIVERED or FAILED.',
      resolve: (d) => d.nextAttemptAt,
    }),
    createdAt: t.expose('createdAt', {
      type: 'DateTime',
      description: 'When the delivery was created (the event, or the redelivery).',
    }),
    deliveredAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When the endpoint answered 2xx.',
      resolve: (d) => d.deliveredAt,
    }),
  }),
})

const CreateWebhookEndpointPayload = builder
  .objectRef<EndpointWithSecret>('CreateWebhookEndpointPayload')
  .implement({
    description: 'An endpoint with its new secret.',
    fields: (t) => ({
      endpoint: t.expose('endpoint', { type: WebhookEndpointRef, description: 'The endpoint.' }),
      secret: t.exposeString('secret', {
        description:
          'The signing secret (whsec_ and base64), shown this once: give it to the receiver, which verifies webhook-signature with it.',
      }),
    }),
  })

const WebhookEndpointPayload = builder
  .objectRef<{ endpoint: WebhookEndpoint }>('WebhookEndpointPayload')
  .implement({
    description: 'The endpoint as it is after the change.',
    fields: (t) => ({
      endpoint: t.expose('endpoint', { type: WebhookEndpointRef, description: 'The endpoint.' }),
    }),
  })

const CreateWebhookEndpointInput = builder.inputType('CreateWebhookEndpointInput', {
  description: 'A new webhook endpoint.',
  fields: (t) => ({
    url: t.string({
      required: true,
      description:
        'An absolute https URL on a public host (plain http and private addresses only for hosts in WEBHOOK_ALLOW_HOSTS or OUTBOUND_ALLOW_HOSTS), without credentials or fragment.',
    }),
    events: t.field({
      type: [WebhookEventTypeEnum],
      description: 'The event types to send; all of them when left out.',
    }),
    description: t.string({ description: 'A note, at most 500 characters.' }),
  }),
})

const UpdateWebhookEndpointInput = builder.inputType('UpdateWebhookEndpointInput', {
  description:
    'Changes to an endpoint: a field left out keeps its value; null clears description and sets events to all; url and enabled cannot be null.',
  fields: (t) => ({
    id: t.id({ required: true, description: 'The endpoint to change.' }),
    url: t.string({ description: 'A new URL (the rules of CreateWebhookEndpointInput.url).' }),
    events: t.field({ type: [WebhookEventTypeEnum], description: 'The event types to send.' }),
    description: t.string({ description: 'A note, at most 500 characters.' }),
    enabled: t.boolean({
      description: 'false stops deliveries (they wait); true sends them again.',
    }),
  }),
})

builder.queryField('webhookEndpoints', (t) =>
  t.field({
    type: [WebhookEndpointRef],
    description: "The tenant's webhook endpoints, oldest first (ADMIN).",
    authScopes: { admin: true },
    resolve: (_root, _args, ctx) => listWebhookEndpoints(ctx.deps, principalOf(ctx).tenantId),
  }),
)

builder.queryField('webhookDeliveries', (t) =>
  t.field({
    type: [WebhookDeliveryRef],
    description:
      "An endpoint's deliveries, newest first (ADMIN). NOT_FOUND when the tenant has no endpoint with this id.",
    authScopes: { admin: true },
    args: {
      endpointId: t.arg.id({ required: true, description: 'The endpoint.' }),
      first: t.arg.int({
        description: `How many, from 1 to ${DELIVERIES_MAX}; default ${DELIVERIES_DEFAULT}.`,
      }),
    },
    resolve: (_root, { endpointId, first }, ctx) =>
      listWebhookDeliveries(ctx.deps, principalOf(ctx).tenantId, String(endpointId), first),
  }),
)

builder.mutationField('createWebhookEndpoint', (t) =>
  t.field({
    type: CreateWebhookEndpointPayload,
    description:
      'Creates a webhook endpoint (ADMIN) and returns its secret, shown this once. Nothing is written when any field is wrong: the BAD_USER_INPUT message names each wrong field.',
    authScopes: { admin: true },
    args: {
      input: t.arg({
        type: CreateWebhookEndpointInput,
        required: true,
        description: 'The new endpoint.',
      }),
    },
    resolve: (_root, { input }, ctx) =>
      createWebhookEndpoint(ctx.deps, principalOf(ctx), {
        url: input.url,
        events: input.events ?? null,
        description: input.description ?? null,
      }),
  }),
)

builder.mutationField('updateWebhookEndpoint', (t) =>
  t.field({
    type: WebhookEndpointPayload,
    description:
      'Changes a webhook endpoint (ADMIN): url, events, description, enabled. Nothing is written when any field is wrong.',
    authScopes: { admin: true },
    args: {
      input: t.arg({
        type: UpdateWebhookEndpointInput,
        required: true,
        description: 'The endpoint id and the fields to change.',
      }),
    },
    resolve: async (_root, { input }, ctx) => ({
      endpoint: await updateWebhookEndpoint(ctx.deps, principalOf(ctx), {
        id: String(input.id),
        url: input.url,
        events: input.events,
        description: input.description,
        enabled: input.enabled,
      }),
    }),
  }),
)

builder.mutationField('deleteWebhookEndpoint', (t) =>
  t.field({
    type: DeletePayload,
    description: 'Deletes a webhook endpoint and its deliveries (ADMIN).',
    authScopes: { admin: true },
    args: { id: t.arg.id({ required: true, description: 'The endpoint to delete.' }) },
    resolve: async (_root, { id }, ctx) => {
      await deleteWebhookEndpoint(ctx.deps, principalOf(ctx), String(id))
      return { id: String(id) }
    },
  }),
)

builder.mutationField('rotateWebhookSecret', (t) =>
  t.field({
    type: CreateWebhookEndpointPayload,
    description:
      'Gives the endpoint a new secret, shown this once (ADMIN). For 24 hours every delivery carries a signature with the previous secret too, so receivers can switch over.',
    authScopes: { admin: true },
    args: { id: t.arg.id({ required: true, description: 'The endpoint.' }) },
    resolve: (_root, { id }, ctx) => rotateWebhookSecret(ctx.deps, principalOf(ctx), String(id)),
  }),
)

builder.mutationField('redeliverWebhook', (t) =>
  t.field({
    type: WebhookDeliveryRef,
    description:
      'Sends the event of a delivery again (ADMIN): a new delivery to the same endpoint with the same webhook-id, due now and retried like any other. The endpoint must be enabled.',
    authScopes: { admin: true },
    args: { deliveryId: t.arg.id({ required: true, description: 'The delivery to repeat.' }) },
    resolve: (_root, { deliveryId }, ctx) =>
      redeliverWebhook(ctx.deps, principalOf(ctx), String(deliveryId)),
  }),
)
