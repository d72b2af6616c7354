from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from surveys.selectors import studies_for_user


class StudyListApi(APIView):
    class OutputSerializer(serializers.Serializer):
        slug = serializers.SlugField()
        name = serializers.CharField()
        default_language = serializers.CharField()
        default_timezone = serializers.CharField()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        studies = studies_for_user(user=request.user)
        return Response(self.OutputSerializer(studies, many=True).data)
