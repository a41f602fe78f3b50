import { z } from 'zod';

const TaskMetadataSchema = z.object({
  Containers: z
    .array(z.object({ Networks: z.array(z.object({ IPv4Addresses: z.array(z.string()).min(1) })).min(1) }))
    .min(1),
});

/** The task's VPC address from the ECS task metadata endpoint (v4), as Fargate's awsvpc mode assigns it. */
export async function taskAddress(metadataUri: string): Promise<string> {
  const res = await fetch(`${metadataUri}/task`, { signal: AbortSignal.timeout(5_000) });
  if (!res.ok) throw new Error(`ECS task metadata answered ${res.status}`);
  const metadata = TaskMetadataSchema.parse(await res.json());
  const address = metadata.Containers[0]?.Networks[0]?.IPv4Addresses[0];
  if (!address) throw new Error('ECS task metadata has no IPv4 address');
  return address;
}
