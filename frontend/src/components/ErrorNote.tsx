import { Link } from "react-router";

import type { ApiError } from "../lib/api";

export function ErrorNote({ error, page = false }: { error: ApiError; page?: boolean }) {
  const body = (
    <p className="form-error" role="alert">
      {error.status === 404 && page ? "This project does not exist, or you are not a member." : error.message}
    </p>
  );
  if (!page) return body;
  return (
    <section className="page narrow">
      {body}
      <p>
        <Link to="/">Back to your projects</Link>
      </p>
    </section>
  );
}
