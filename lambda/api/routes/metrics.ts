/** `GET /metrics`: the process's operator metrics as Prometheus text, behind the operator token. */
import { OpenAPIHono, z } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import type { OperatorMetrics } from '../../../shared/metrics/operator-metrics';
import { errorResponse } from '../errors';
import { ADMIN_SECURITY, AUTHENTICATED, addRoute, errors } from '../route-spec';

export interface MetricsRouteDeps {
  auth: MiddlewareHandler;
  /** The process's metrics (`npm start`); absent in the Lambda, whose figures go to CloudWatch. */
  metrics?: Pick<OperatorMetrics, 'text' | 'contentType'>;
}

export function metricsRoutes(deps: MetricsRouteDeps): OpenAPIHono {
  const app = new OpenAPIHono();
  app.use(deps.auth);
  addRoute(
    app,
    {
      tags: ['Operator'],
      security: ADMIN_SECURITY,
      method: 'get',
      path: '/',
      operationId: 'getMetrics',
      summary: 'Operator metrics (Prometheus text)',
      description:
        "The gateway's and the API's operator metrics in the Prometheus text format (docs/metrics.md lists " +
        'each with its labels). Served where the API runs in one process with a gateway (`npm start`); ' +
        "in AWS each gateway serves its own on its control port and the same figures go to CloudWatch, so the API's route answers 404.",
      responses: {
        200: {
          content: { 'text/plain': { schema: z.string() } },
          description: 'Prometheus text exposition format 0.0.4',
        },
        ...errors([404, ...AUTHENTICATED], {
          404: '`not_found`: this API runs without a gateway beside it (AWS): scrape the gateways, or read CloudWatch',
        }),
      },
    },
    async (c) => {
      const { metrics } = deps;
      if (!metrics) {
        return errorResponse(
          c,
          404,
          'not_found',
          'metrics are not served by this API: scrape each gateway (GET /metrics on its control port) or read them in CloudWatch',
        );
      }
      c.header('Cache-Control', 'no-store');
      return c.body(await metrics.text(), 200, { 'Content-Type': metrics.contentType });
    },
  );
  return app;
}
